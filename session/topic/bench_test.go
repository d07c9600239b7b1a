package topic

import (
	"fmt"
	"runtime"
	"testing"
)

// benchTree subscribes 10,000 clients of a gateway fleet: each device
// subscribes to its own command topic and a wildcard of its site, plus a few
// monitoring wildcards and shared groups.
func benchTree() *Tree {
	tr := NewTree()
	for i := range 4990 {
		id := fmt.Sprint("dev", i)
		tr.Subscribe(Sub{ClientID: id, Filter: fmt.Sprintf("site/%d/dev/%d/cmd", i%100, i), QoS: 1})
		tr.Subscribe(Sub{ClientID: id, Filter: fmt.Sprintf("site/%d/+/+/config", i%100), QoS: 1})
	}
	for i := range 10 {
		tr.Subscribe(Sub{ClientID: fmt.Sprint("mon", i), Filter: "site/+/dev/+/cmd"})
		tr.Subscribe(Sub{ClientID: fmt.Sprint("mon", i), Filter: "$SYS/#"})
		tr.Subscribe(Sub{ClientID: fmt.Sprint("worker", i), Group: "ingest", Filter: "site/+/dev/+/telemetry"})
	}
	return tr
}

// benchTopics returns topics published to benchTree: a third reach 11
// subscriptions, a third one shared group, a third about 50 subscriptions.
func benchTopics() []string {
	topics := make([]string, 256)
	for i := range topics {
		kind := [...]string{"cmd", "telemetry", "config"}[i%3]
		topics[i] = fmt.Sprintf("site/%d/dev/%d/%s", i%100, i, kind)
	}
	return topics
}

func BenchmarkMatch(b *testing.B) {
	tr := benchTree()
	if n := tr.Count(); n != 10010 {
		b.Fatalf("Count = %d", n)
	}
	topics := benchTopics()
	var m Matches
	b.ReportAllocs()
	for i := 0; b.Loop(); i++ {
		m.Reset()
		tr.Match(topics[i%len(topics)], &m)
	}
}

// BenchmarkMatchParallel shows how Match scales under the read lock.
func BenchmarkMatchParallel(b *testing.B) {
	tr := benchTree()
	topics := benchTopics()
	b.ReportAllocs()
	b.RunParallel(func(pb *testing.PB) {
		var m Matches
		for i := 0; pb.Next(); i++ {
			m.Reset()
			tr.Match(topics[i%len(topics)], &m)
		}
	})
}

// BenchmarkSubscribe measures a subscribe and unsubscribe pair on a tree of
// 10,000 subscriptions, so the tree stays the same size.
func BenchmarkSubscribe(b *testing.B) {
	tr := benchTree()
	filters := make([]string, 1024)
	for i := range filters {
		filters[i] = fmt.Sprintf("site/%d/dev/%d/extra", i%100, i)
	}
	b.ReportAllocs()
	for i := 0; b.Loop(); i++ {
		s := Sub{ClientID: "bench", Filter: filters[i%len(filters)]}
		tr.Subscribe(s)
		tr.Unsubscribe(s.ClientID, "", s.Filter)
	}
}

// BenchmarkRetainedMatch matches filters against 100,000 retained topics,
// r/{0..99}/{0..999}.
func BenchmarkRetainedMatch(b *testing.B) {
	r := NewRetained[int]()
	for i := range 100_000 {
		r.Set(fmt.Sprintf("r/%d/%d", i/1000, i%1000), i)
	}
	for _, bm := range []struct {
		filter string
		want   int
	}{
		{"r/42/42", 1},
		{"r/+/7", 100},
		{"r/42/+", 1000},
		{"+/+/7", 100},
	} {
		b.Run(bm.filter, func(b *testing.B) {
			b.ReportAllocs()
			for b.Loop() {
				n := 0
				r.Match(bm.filter, func(string, int) bool { n++; return true })
				if n != bm.want {
					b.Fatalf("Match(%q) gave %d topics, want %d", bm.filter, n, bm.want)
				}
			}
		})
	}
}

// BenchmarkBuild builds benchTree. heapB/sub is the live heap per
// subscription once built, the figure that sizes the tree on a small gateway;
// it includes the client identifier and filter strings.
func BenchmarkBuild(b *testing.B) {
	b.ReportAllocs()
	for b.Loop() {
		benchTree()
	}
	var before, after runtime.MemStats
	runtime.GC()
	runtime.ReadMemStats(&before)
	tr := benchTree()
	runtime.GC()
	runtime.ReadMemStats(&after)
	b.ReportMetric(float64(int64(after.HeapAlloc)-int64(before.HeapAlloc))/float64(tr.Count()), "heapB/sub")
	runtime.KeepAlive(tr)
}
