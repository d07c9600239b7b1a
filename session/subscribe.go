package session

import (
	"strings"

	"edgebroker/codec"
	"edgebroker/session/topic"
)

// handleSubscribe adds the subscriptions of a SUBSCRIBE, answers with SUBACK and then queues
// the retained messages the new subscriptions ask for.
func (c *conn) handleSubscribe(p *codec.Subscribe) error {
	var subID uint32
	if len(p.Props.SubscriptionIDs) > 0 {
		subID = p.Props.SubscriptionIDs[0]
	}
	reasons := make([]codec.ReasonCode, len(p.Subs))
	var retained []topic.Sub
	for i, req := range p.Subs {
		group, filter, shared, err := topic.ParseShared(req.Filter)
		if err != nil || !codec.ValidTopicFilter(req.Filter) {
			reasons[i] = codec.UnspecifiedError // 3.1.1's only failure code [MQTT-3.9.3-2]
			if c.version == codec.V5 {
				reasons[i] = codec.TopicFilterInvalid
			}
			continue
		}
		if shared && req.NoLocal {
			return codec.ProtocolError // [MQTT-3.8.3-4]
		}
		// Decoded strings point into the packet body: clone what the tree keeps for good.
		filter, group = strings.Clone(filter), strings.Clone(group)
		sub := topic.Sub{ClientID: c.clientID, Filter: filter, Group: group, QoS: req.QoS,
			NoLocal: req.NoLocal, RetainAsPublished: req.RetainAsPublished,
			RetainHandling: req.RetainHandling, SubID: subID}
		existed := c.b.subs.Subscribe(sub) // replaces an existing one [MQTT-3.8.4-3]
		c.s.mu.Lock()
		if c.s.subs != nil {
			c.s.subs[subKey{group, filter}] = sub
		}
		c.s.mu.Unlock()
		reasons[i] = codec.ReasonCode(req.QoS) // granted QoS: all three are supported
		if req.RetainHandling == 0 || (req.RetainHandling == 1 && !existed) {
			retained = append(retained, sub)
		}
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
	for i, f := range p.Filters {
		group, filter, _, err := topic.ParseShared(f)
		if err != nil {
			reasons[i] = codec.TopicFilterInvalid
			continue
		}
		if !c.b.subs.Unsubscribe(c.clientID, group, filter) {
			reasons[i] = codec.NoSubscriptionExisted
		}
		c.s.mu.Lock()
		delete(c.s.subs, subKey{group, filter})
		c.s.mu.Unlock()
	}
	if err := c.send(&codec.Unsuback{PacketID: p.PacketID, Reasons: reasons}); err != nil {
		return err
	}
	return c.flush()
}
