package main

import (
	"errors"
	"flag"
	"log/slog"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/seed-a49a8342/cartograph/detect/incident"
	"github.com/seed-a49a8342/cartograph/detect/runner"
	"github.com/seed-a49a8342/cartograph/graph"
	"github.com/seed-a49a8342/cartograph/graph/changes"
	"github.com/seed-a49a8342/cartograph/graph/finding"
	"github.com/seed-a49a8342/cartograph/ingest/semconv"
	"github.com/seed-a49a8342/cartograph/storage"
)

// changesConfig is how changes are recorded (graph/changes).
type changesConfig struct {
	MaxChanges       int
	ChangesGoneAfter time.Duration
}

// flags defines the flags of changesConfig on fs.
func (c *changesConfig) flags(fs *flag.FlagSet) {
	fs.IntVar(&c.MaxChanges, "max-changes", changes.DefaultMaxChanges, "changes (new versions, instances replaced, nodes and edges added and removed) kept in memory, the newest; with ClickHouse all are also stored for --retention")
	fs.DurationVar(&c.ChangesGoneAfter, "changes-gone-after", changes.DefaultGoneAfter, "how long a node or edge (or a version, or an instance) must go unseen to be recorded gone; rare calls wait longer, 20 of their usual gaps")
}

// Validate checks the change flags.
func (c changesConfig) Validate() error {
	var errs []error
	if c.MaxChanges < 1 {
		errs = append(errs, errors.New("--max-changes must be at least 1"))
	}
	if c.ChangesGoneAfter <= 0 {
		errs = append(errs, errors.New("--changes-gone-after must be positive"))
	}
	return errors.Join(errs...)
}

// newChangeRecorder returns the recorder of changes, which stores them in
// ClickHouse when that is the storage (the embedded storage keeps none:
// the recorder's ring is all there is).
func newChangeRecorder(cfg config, st storage.Storage, logger *slog.Logger, reg prometheus.Registerer) (*changes.Recorder, error) {
	o := changes.Options{
		MaxChanges: cfg.MaxChanges, MaxServices: cfg.MaxNodes, MaxSubjects: cfg.MaxNodes + cfg.MaxEdges,
		GoneAfter: cfg.ChangesGoneAfter, Quiet: cfg.Window, Logger: logger, Registerer: reg,
	}
	if cs, ok := st.(changes.Store); ok && cfg.Storage == storageClickHouse {
		o.Store = cs
	}
	return changes.New(o)
}

// changeSink shows the recorder the resources of every batch of spans
// before the graph takes them.
type changeSink struct {
	next semconv.SpanSink
	rec  *changes.Recorder
}

func (s changeSink) ConsumeSpans(spans []graph.Span) (int, string) {
	s.rec.Observe(spans)
	return s.next.ConsumeSpans(spans)
}

// recordingCorrelator records the changes of each tick's snapshot before
// the incidents are made, so that they cite the changes of that tick.
type recordingCorrelator struct {
	rec  *changes.Recorder
	next runner.Correlator
}

func (c recordingCorrelator) Correlate(s *graph.Snapshot, fs []finding.Finding) []finding.Incident {
	c.rec.Record(s)
	return c.next.Correlate(s, fs)
}

// incidentChanges is the recorder as incidents read it: a change on an
// edge is a change of its caller (it called something new, or stopped).
type incidentChanges struct{ rec *changes.Recorder }

func (c incidentChanges) ChangesBetween(from, to time.Time) []incident.Change {
	cs := c.rec.Between(from, to)
	out := make([]incident.Change, 0, len(cs))
	for _, ch := range cs {
		out = append(out, incident.Change{ID: ch.ID, At: ch.At, NodeID: cmpOr(ch.NodeID, ch.SourceID), EdgeID: ch.EdgeID, Summary: ch.Summary})
	}
	return out
}

func cmpOr(a, b string) string {
	if a != "" {
		return a
	}
	return b
}
