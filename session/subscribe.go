package session

import (
	"errors"
	"strings"

	"edgebroker/codec"
	"edgebroker/session/store"
	"edgebroker/session/topic"
)

// handleSubscribe adds the subscriptions of a SUBSCRIBE, answers with SUBACK and then queues
// the retained messages the new subscriptions ask for.
func (c *conn) handleSubscribe(p *codec.Subscribe) error {
	var subID uint32
	if len(p.Props.SubscriptionIDs) > 0 {
		subID = p.Props.SubscriptionIDs[0]
	}
	// A protocol error rejects the whole packet: checked before anything is added.
	for _, req := range p.Subs {
		if _, _, shared, err := topic.ParseShared(req.Filter); err == nil && shared && req.NoLocal {
			return codec.ProtocolError // [MQTT-3.8.3-4]
		}
	}
	reasons := make([]codec.ReasonCode, len(p.Subs))
	var retained, added []topic.Sub
	for i, req := range p.Subs {
		group, filter, _, err := topic.ParseShared(req.Filter)
		if err != nil || !codec.ValidTopicFilter(req.Filter) || !c.b.topicWithinLimits(filter) {
			reasons[i] = codec.UnspecifiedError // 3.1.1's only failure code [MQTT-3.9.3-2]
			if c.version == codec.V5 {
				reasons[i] = codec.TopicFilterInvalid
			}
			continue
		}
		if a := c.b.o().Auth; a != nil && !a.CanSubscribe(c.info, filter) { // without $share/NAME/
			reasons[i] = codec.UnspecifiedError // 3.1.1's only failure code
			if c.version == codec.V5 {
				reasons[i] = codec.NotAuthorized
			}
			c.logClose("subscription denied", errors.New(req.Filter))
			continue
		}
		reserved, ok := c.admitSubscription(group, filter)
		if !ok {
			reasons[i] = codec.UnspecifiedError
			if c.version == codec.V5 {
				reasons[i] = codec.QuotaExceeded
			}
			continue
		}
		// Decoded strings point into the packet body: clone what the tree keeps for good.
		filter, group = strings.Clone(filter), strings.Clone(group)
		sub := topic.Sub{ClientID: c.clientID, Filter: filter, Group: group, QoS: req.QoS,
			NoLocal: req.NoLocal, RetainAsPublished: req.RetainAsPublished,
			RetainHandling: req.RetainHandling, SubID: subID}
		existed := c.subscribe(sub, reserved)  // replaces an existing one [MQTT-3.8.4-3]
		reasons[i] = codec.ReasonCode(req.QoS) // granted QoS: all three are supported
		added = append(added, sub)
		if req.RetainHandling == 0 || (req.RetainHandling == 1 && !existed) {
			retained = append(retained, sub)
		}
	}
	// For a persistent session the SUBACK waits until the subscriptions are durable
	// [DESIGN 3.2]; if they cannot be stored they are refused.
	if err := c.b.storeSubs(c.s, added, nil); err != nil {
		for i := range reasons {
			if !reasons[i].IsFailure() {
				reasons[i] = codec.UnspecifiedError
			}
		}
		for _, sub := range added {
			c.unsubscribe(sub.Group, sub.Filter)
		}
		retained = nil
	}
	// SUBACK goes out before any retained message it releases [MQTT-3.8.4-1].
	if err := c.send(&codec.Suback{PacketID: p.PacketID, Reasons: reasons}); err != nil {
		return err
	}
	if err := c.flush(); err != nil {
		return err
	}
	for _, sub := range retained {
		c.b.sendRetained(c.s, sub)
	}
	return nil
}

// handleUnsubscribe removes subscriptions and answers with UNSUBACK [MQTT-3.10.4-4].
func (c *conn) handleUnsubscribe(p *codec.Unsubscribe) error {
	reasons := make([]codec.ReasonCode, len(p.Filters))
	var removed []topic.Sub
	for i, f := range p.Filters {
		group, filter, _, err := topic.ParseShared(f)
		if err != nil {
			reasons[i] = codec.TopicFilterInvalid
			continue
		}
		if !c.unsubscribe(group, filter) {
			reasons[i] = codec.NoSubscriptionExisted
		}
		removed = append(removed, topic.Sub{Group: group, Filter: filter})
	}
	if err := c.b.storeSubs(c.s, nil, removed); err != nil {
		return err // UNSUBACK only once durable [DESIGN 3.2]: the connection closes instead
	}
	if err := c.send(&codec.Unsuback{PacketID: p.PacketID, Reasons: reasons}); err != nil {
		return err
	}
	return c.flush()
}

// storeSubs makes subscription changes of a persistent session durable.
func (b *Broker) storeSubs(s *Session, added, removed []topic.Sub) error {
	if !b.persisting() || len(added)+len(removed) == 0 {
		return nil
	}
	if !s.isPersistent() {
		return nil
	}
	var batch store.Batch
	for _, sub := range added {
		batch.PutSub(s.id, subRecord(sub))
	}
	for _, sub := range removed {
		batch.DeleteSub(s.id, sub.Group, sub.Filter)
	}
	return b.syncBatch(&batch)
}

// admitSubscription reports whether (group, filter) may be subscribed to. Replacing an
// existing subscription always may; a new one must keep the session within
// Options.MaxSubscriptions and fit in the memory budget, where its size is then reserved
// (reserved: subscribe takes the reservation over).
func (c *conn) admitSubscription(group, filter string) (reserved, ok bool) {
	has, n := c.b.subs.Subscribed(c.clientID, group, filter)
	if has {
		return false, true
	}
	if max := c.b.o().MaxSubscriptions; max > 0 && n >= max {
		return false, false
	}
	s := c.s
	s.mu.Lock()
	defer s.mu.Unlock()
	ok = s.reserveLocked(subscriptionSize(group, filter))
	return ok, ok
}

// subscribe adds sub to the tree, replacing the client's subscription to the same filter, and
// keeps the session's charge for its subscriptions right: reserved says admitSubscription
// reserved for a new one. It reports whether sub replaced one.
func (c *conn) subscribe(sub topic.Sub, reserved bool) (existed bool) {
	existed = c.b.subs.Subscribe(sub)
	if existed != reserved {
		return existed // a replacement without a reservation, or an addition with one
	}
	// Something else added or removed the same filter since admitSubscription looked.
	n := subscriptionSize(sub.Group, sub.Filter)
	if existed {
		n = -n
	}
	c.s.mu.Lock()
	c.s.holdLocked(n)
	c.s.mu.Unlock()
	return existed
}

// unsubscribe removes the client's subscription to (group, filter), releasing its charge, and
// reports whether there was one.
func (c *conn) unsubscribe(group, filter string) bool {
	if !c.b.subs.Unsubscribe(c.clientID, group, filter) {
		return false
	}
	c.s.mu.Lock()
	c.s.holdLocked(-subscriptionSize(group, filter))
	c.s.mu.Unlock()
	return true
}

// topicWithinLimits checks a topic name or filter against Options.MaxTopicLength and
// MaxTopicLevels.
func (b *Broker) topicWithinLimits(t string) bool {
	o := b.o()
	if o.MaxTopicLength > 0 && len(t) > o.MaxTopicLength {
		return false
	}
	return o.MaxTopicLevels == 0 || strings.Count(t, "/") < o.MaxTopicLevels
}
