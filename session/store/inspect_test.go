package store

import (
	"strings"
	"testing"
)

func TestInspect(t *testing.T) {
	o := testOptions(t, nil) // the real file system: Inspect reads the directory itself
	s, _ := mustOpen(t, o)
	var b Batch
	b.PutSession(&Session{ClientID: "c", Version: 5})
	b.PutMessage(msg(1, "t"))
	b.PutEntry("c", &Entry{Seq: 1, MsgID: 1, QoS: 2})
	b.PutEntry("c", &Entry{Seq: 2, MsgID: 1, QoS: 2})
	b.ReleaseEntry("c", 1, 7)
	b.PutRetained("t", 1)
	mustSync(t, s, &b)
	if err := s.Checkpoint(); err != nil {
		t.Fatal(err)
	}
	b.PutSub("c", Sub{Filter: "after/checkpoint"})
	mustSync(t, s, &b)

	r, err := Inspect(o.Dir) // beside the live store
	if err != nil {
		t.Fatal(err)
	}
	text := r.String()
	if !r.DBCopied || len(r.Sessions) != 1 || r.Sessions[0].Entries != 2 || r.Sessions[0].Released != 1 ||
		r.Messages != 1 || r.Retained != 1 || r.CheckpointPos != 1 || r.Log.LastPos != 2 {
		t.Fatalf("live report %+v:\n%s", r, text)
	}
	if len(r.BodyFiles) != 1 || r.BodyFiles[0].Size <= r.BodyFiles[0].LiveBytes || r.BodyFiles[0].LiveBytes != int64(bodyHdrSize+len(msgBytes(t, 1, "t"))) {
		t.Fatalf("body files %+v; want one holding message 1", r.BodyFiles)
	}
	for _, want := range []string{`session "c": v5`, "2 queued (1 awaiting PUBCOMP)", "1 after the checkpoint", "read from a copy", "body files: 1,"} {
		if !strings.Contains(text, want) {
			t.Errorf("report lacks %q:\n%s", want, text)
		}
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	r, err = Inspect(o.Dir)
	if err != nil || r.DBCopied || r.CheckpointPos != 2 || r.Sessions[0].Subs != 1 {
		t.Fatalf("report after Close %+v, %v", r, err)
	}
	if r, err := Inspect(t.TempDir()); err != nil || len(r.Sessions) != 0 || r.DBSize != 0 {
		t.Fatalf("report of an empty directory %+v, %v", r, err)
	}
}

// msgBytes is the encoded msg(id, topic).
func msgBytes(t *testing.T, id uint64, topic string) []byte {
	t.Helper()
	b, err := msg(id, topic).MarshalMsg(nil)
	if err != nil {
		t.Fatal(err)
	}
	return b
}
