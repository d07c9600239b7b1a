package session

import (
	"fmt"
	"runtime/metrics"
	"strconv"
	"strings"
	"time"
)

// sysLoop publishes the broker's counters as retained $SYS messages every interval until the
// broker closes. The names follow Mosquitto's where the concept is the same.
func (b *Broker) sysLoop(every time.Duration) {
	start := b.now()
	t := time.NewTicker(every)
	defer t.Stop()
	for {
		b.publishSys(start)
		select {
		case <-t.C:
		case <-b.closing:
			return
		}
	}
}

// publishSys publishes one round of $SYS topics.
func (b *Broker) publishSys(start time.Time) {
	queued, bytes, spilled, spilledBytes := 0, int64(0), 0, int64(0)
	type clientStat struct {
		s      *Session
		values [len(perClientSysTopics)]uint64 // in the order of perClientSysTopics
	}
	var clients []clientStat
	perClient := b.o().SysPerClient
	b.mu.RLock()
	sessions := len(b.sessions)
	// Connections are counted in and out under b.mu: with it held the counts agree.
	connected := b.stats.ClientsConnected.Load()
	disconnected := max(0, int64(sessions)-connected)
	for id, s := range b.sessions {
		s.mu.Lock()
		n := s.queue.Len()
		queued += n
		bytes += s.queue.Bytes()
		onDisk, diskBytes := s.queue.Spilled()
		spilled += onDisk
		spilledBytes += diskBytes
		if perClient && sysClientTopics(id) {
			clients = append(clients, clientStat{s, [...]uint64{uint64(n), uint64(len(s.inflight)), s.dropped}})
		}
		s.mu.Unlock()
	}
	b.mu.RUnlock()

	st := &b.stats
	heap := heapBytes()
	values := []struct {
		topic string
		value any
	}{
		{"version", "edgebroker " + b.o().Version},
		{"uptime", fmt.Sprintf("%d seconds", int64(b.now().Sub(start).Seconds()))},
		{"clients/connected", connected},
		{"clients/total", sessions},
		{"clients/disconnected", disconnected}, // persistent sessions without a connection
		{"clients/maximum", st.ClientsMaximum.Load()},
		{"messages/received", st.MessagesReceived.Load()},
		{"messages/sent", st.MessagesSent.Load()},
		{"publish/messages/dropped", st.MessagesDropped.Load()},
		{"messages/expired", st.MessagesExpired.Load()},
		{"store/messages/count", queued},
		{"store/messages/bytes", bytes},
		{"subscriptions/count", b.subs.Count()},
		{"retained messages/count", b.retained.Len()},
		{"heap/current", heap},
		{"heap/maximum", b.heapMax.Load()},
		{"memory/used", b.mem.Used()}, // the account (memory.go); the heap is above
		{"memory/limit", b.o().MemoryLimit},
		{"memory/pressure", boolInt(b.pressure.Load())},
		{"memory/spilled/messages", spilled},
		{"memory/spilled/bytes", spilledBytes},
	}
	if b.persisting() {
		ss := b.store.Stats()
		down := boolInt(b.storeDown.Load())
		values = append(values, []struct {
			topic string
			value any
		}{
			{"disk/bytes written", ss.Log.BytesWritten + ss.BodyWritten},
			{"disk/fsyncs", ss.Log.Fsyncs},
			{"disk/checkpoints", ss.Checkpoints},
			{"disk/checkpoint bytes", ss.DBSize},
			{"disk/bodies bytes", ss.BodyBytes},
			{"disk/failed", down},
		}...)
	}
	for _, v := range values {
		b.publishSysValue("$SYS/broker/"+v.topic, v.value)
	}
	for _, c := range clients {
		if b.session(c.s.id) != c.s {
			continue // ended since: its values were deleted, and must not come back
		}
		for i, t := range perClientSysTopics {
			b.publishSysValue("$SYS/broker/clients/"+c.s.id+"/"+t, c.values[i])
		}
		// Had the session ended while they went out, its values could have come back after
		// it deleted them: delete them again. (A session ending from here on deletes them
		// itself.)
		b.mu.Lock()
		if b.sessions[c.s.id] != c.s {
			b.forgetSysClientLocked(c.s.id)
		}
		b.mu.Unlock()
	}
}

// perClientSysTopics are the per-client values under $SYS/broker/clients/<id>/.
var perClientSysTopics = [...]string{"queued", "inflight", "dropped"}

// sysClientTopics reports whether a client id can name $SYS topics: one with a wildcard or a
// level separator would make an invalid or misleading topic name, and is left out.
func sysClientTopics(id string) bool { return !strings.ContainsAny(id, "+#/") }

// forgetSysClientLocked deletes the retained per-client $SYS values of a session that ended,
// which would otherwise stay for good. b.mu is held.
func (b *Broker) forgetSysClientLocked(id string) {
	if !sysClientTopics(id) {
		return
	}
	for _, t := range perClientSysTopics {
		b.deleteRetained("$SYS/broker/clients/" + id + "/" + t)
	}
}

// publishSysValue publishes one $SYS value as a retained QoS 0 message. It is neither stored nor
// logged: $SYS values are recomputed, and writing them every interval would wear the flash.
func (b *Broker) publishSysValue(topic string, value any) {
	var payload string
	switch v := value.(type) {
	case string:
		payload = v
	case int:
		payload = strconv.Itoa(v)
	case int64:
		payload = strconv.FormatInt(v, 10)
	case uint64:
		payload = strconv.FormatUint(v, 10)
	default:
		payload = fmt.Sprint(v)
	}
	// QoS 0 deliveries are never held for the store, and offerAll writes nothing itself.
	b.offerAll(&Message{Topic: topic, Payload: []byte(payload), Retain: true, sys: true}, false)
}

// heapBytes reads the bytes of live heap objects without stopping the world.
func heapBytes() uint64 {
	s := []metrics.Sample{{Name: heapMetric}}
	metrics.Read(s)
	return sampleUint(s[0])
}

// boolInt is 1 for true, as $SYS reports flags.
func boolInt(v bool) int {
	if v {
		return 1
	}
	return 0
}
