package storage

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/seed-a49a8342/cartograph/graph"
	"github.com/seed-a49a8342/cartograph/graph/finding"
	"github.com/seed-a49a8342/cartograph/graph/lag"
)

// EdgeSource gives the edge buckets closed since a time (graph.Graph).
type EdgeSource interface {
	ClosedBuckets(after time.Time) ([]graph.EdgeBucket, time.Time)
}

// NodeSource gives the nodes seen in the buckets closed since a time
// (graph.Graph). When the PersisterOptions.Edges source implements it, the
// Persister stores those nodes too, with the same bookkeeping as edges.
type NodeSource interface {
	ClosedNodes(after time.Time) []graph.NodeSeen
}

// FindingSource lists findings in every state (detect.Engine).
type FindingSource interface {
	Findings(state finding.State) []finding.Finding
}

// LagSink receives lag samples (graph/lag.Store); the Persister's Tee sits
// in front of it.
type LagSink interface {
	Add(samples []lag.Sample) (rejected int)
}

// PersisterOptions configure a Persister.
type PersisterOptions struct {
	Storage Storage
	// Edges gives the closed edge buckets; when it is also a NodeSource,
	// the nodes seen in them are stored as well.
	Edges    EdgeSource
	Findings FindingSource
	// FlushInterval is how often a batch is written (default 5s); after a
	// crash at most this much is lost.
	FlushInterval time.Duration
	// WriteTimeout bounds one batch's write (default 30s).
	WriteTimeout time.Duration
	// MaxBuffered bounds the rows (edge buckets, nodes, findings, lag samples)
	// held while the backend is down (default 1,000,000). Beyond it the
	// oldest rows are dropped and counted, and Full reports true so
	// ingest can push back on senders.
	MaxBuffered int
	// MaxBufferedSpans bounds the raw spans (AddSpans) held until the next
	// flush or while the backend is down (default 100,000). Beyond it the
	// oldest are dropped and counted; raw spans never make Full report
	// true, so they never push back on ingest.
	MaxBufferedSpans int
	Logger           *slog.Logger
	Registerer       prometheus.Registerer
}

// Persister moves closed edge buckets (and the nodes seen in them), finding
// changes, lag samples and (when a SpanSampler feeds it) raw spans into a
// Storage in batches, buffering (bounded)
// while the backend is down and catching up when it returns. Safe for concurrent use.
type Persister struct {
	o        PersisterOptions
	rows     *prometheus.CounterVec
	batches  *prometheus.CounterVec
	buffered prometheus.Gauge

	mu        sync.Mutex
	edges     []graph.EdgeBucket
	nodes     []graph.NodeSeen
	findings  map[string]finding.Finding // pending, by id
	lags      []lag.Sample
	spans     []Span
	lastEdges time.Time
	written   map[string]findingMark // what was last written per finding
	lastErr   error
	full      bool
}

type findingMark struct {
	state    finding.State
	lastSeen time.Time
	severity finding.Severity
}

// NewPersister returns a Persister for o.
func NewPersister(o PersisterOptions) (*Persister, error) {
	if o.Storage == nil {
		return nil, errors.New("storage: PersisterOptions.Storage is required")
	}
	if o.FlushInterval <= 0 {
		o.FlushInterval = 5 * time.Second
	}
	if o.WriteTimeout <= 0 {
		o.WriteTimeout = 30 * time.Second
	}
	if o.MaxBuffered <= 0 {
		o.MaxBuffered = 1_000_000
	}
	if o.MaxBufferedSpans <= 0 {
		o.MaxBufferedSpans = 100_000
	}
	if o.Logger == nil {
		o.Logger = slog.New(slog.DiscardHandler)
	}
	p := &Persister{
		o: o, findings: map[string]finding.Finding{}, written: map[string]findingMark{},
		rows: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "cartograph_storage_rows_total",
			Help: "Rows handed to storage, by kind (edge, node, finding, lag, span) and outcome (written, dropped).",
		}, []string{"kind", "outcome"}),
		batches: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "cartograph_storage_batches_total",
			Help: "Batches written to storage, by outcome (success, error).",
		}, []string{"outcome"}),
		buffered: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "cartograph_storage_buffered_rows",
			Help: "Rows waiting to be written (grows while storage is down).",
		}),
	}
	for _, k := range []string{"edge", "node", "finding", "lag", "span"} {
		p.rows.WithLabelValues(k, "written")
		p.rows.WithLabelValues(k, "dropped")
	}
	if o.Registerer != nil {
		for _, c := range []prometheus.Collector{p.rows, p.batches, p.buffered} {
			if err := o.Registerer.Register(c); err != nil {
				return nil, fmt.Errorf("storage: register metrics: %w", err)
			}
		}
	}
	return p, nil
}

// SkipEdgesThrough tells the persister that edge buckets starting at or
// before t are already stored (they were restored from storage), so they
// are not written a second time.
func (p *Persister) SkipEdgesThrough(t time.Time) {
	p.mu.Lock()
	if t.After(p.lastEdges) {
		p.lastEdges = t
	}
	p.mu.Unlock()
}

// Tee returns a LagSink that hands samples to next and keeps a copy to
// persist.
func (p *Persister) Tee(next LagSink) LagSink { return teeSink{p: p, next: next} }

type teeSink struct {
	p    *Persister
	next LagSink
}

func (t teeSink) Add(samples []lag.Sample) int {
	rej := t.next.Add(samples)
	t.p.mu.Lock()
	t.p.lags = append(t.p.lags, samples...)
	t.p.trimLocked()
	t.p.mu.Unlock()
	return rej
}

// AddSpans buffers raw spans (SpanSampler) for the next flush. It never
// blocks on storage: beyond MaxBufferedSpans the oldest are dropped and
// counted.
func (p *Persister) AddSpans(spans []Span) {
	p.mu.Lock()
	p.spans = append(p.spans, spans...)
	p.trimSpansLocked()
	p.mu.Unlock()
}

// trimSpansLocked drops the oldest spans beyond MaxBufferedSpans. Caller
// holds mu.
func (p *Persister) trimSpansLocked() {
	if over := len(p.spans) - p.o.MaxBufferedSpans; over > 0 {
		clear(p.spans[:over])
		p.spans = p.spans[over:]
		p.rows.WithLabelValues("span", "dropped").Add(float64(over))
	}
}

// Full reports whether the buffer is at its bound: the backend has been
// down long enough that ingest should push back on senders.
func (p *Persister) Full() bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.full
}

// Err returns the last write error, nil once a write succeeds again.
func (p *Persister) Err() error {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.lastErr
}

// Run flushes every FlushInterval until ctx is done, then flushes once more
// (bounded by WriteTimeout) so a SIGTERM loses nothing written so far.
func (p *Persister) Run(ctx context.Context) error {
	t := time.NewTicker(p.o.FlushInterval)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			fctx, cancel := context.WithTimeout(context.Background(), p.o.WriteTimeout)
			defer cancel()
			if err := p.Flush(fctx); err != nil {
				p.o.Logger.Error("storage: final flush failed", "err", err)
			}
			return nil
		case <-t.C:
			if err := p.Flush(ctx); err != nil && ctx.Err() == nil {
				p.o.Logger.Warn("storage: flush failed; buffering until it is back", "err", err)
			}
		}
	}
}

// Flush collects what changed and writes it in one batch. On failure the
// rows stay buffered (bounded) for the next flush.
func (p *Persister) Flush(ctx context.Context) error {
	p.collect()
	p.mu.Lock()
	edges, nodes, lags, spans := p.edges, p.nodes, p.lags, p.spans
	p.edges, p.nodes, p.lags, p.spans = nil, nil, nil, nil
	fl := make([]finding.Finding, 0, len(p.findings))
	for _, f := range p.findings {
		fl = append(fl, f)
	}
	p.mu.Unlock()
	if len(edges)+len(nodes)+len(fl)+len(lags)+len(spans) == 0 {
		return nil
	}
	wctx, cancel := context.WithTimeout(ctx, p.o.WriteTimeout)
	defer cancel()
	spansDropped, err := p.write(wctx, edges, nodes, fl, lags, spans)
	if spansDropped {
		p.o.Logger.Warn("storage: the backend does not store raw spans; dropping them", "spans", len(spans))
		p.rows.WithLabelValues("span", "dropped").Add(float64(len(spans)))
		spans = nil
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	if err != nil {
		// Put the batch back in front of what arrived meanwhile.
		p.edges = append(edges, p.edges...)
		p.nodes = append(nodes, p.nodes...)
		p.lags = append(lags, p.lags...)
		p.spans = append(spans, p.spans...)
		p.trimLocked()
		p.trimSpansLocked()
		p.batches.WithLabelValues("error").Inc()
		p.lastErr = err
		return err
	}
	p.batches.WithLabelValues("success").Inc()
	p.rows.WithLabelValues("edge", "written").Add(float64(len(edges)))
	p.rows.WithLabelValues("node", "written").Add(float64(len(nodes)))
	p.rows.WithLabelValues("finding", "written").Add(float64(len(fl)))
	p.rows.WithLabelValues("lag", "written").Add(float64(len(lags)))
	p.rows.WithLabelValues("span", "written").Add(float64(len(spans)))
	for _, f := range fl {
		if cur, ok := p.findings[f.ID]; ok && cur.LastSeen.Equal(f.LastSeen) && cur.State == f.State {
			delete(p.findings, f.ID)
		}
		p.written[f.ID] = findingMark{state: f.State, lastSeen: f.LastSeen, severity: f.Severity}
	}
	p.lastErr, p.full = nil, false
	p.buffered.Set(float64(p.bufferedLocked()))
	return nil
}

// write writes one batch. Raw spans go only to a backend that stores
// them (SpanAppender); elsewhere they are dropped (spansDropped) rather
// than failing the batch forever.
func (p *Persister) write(ctx context.Context, edges []graph.EdgeBucket, nodes []graph.NodeSeen, findings []finding.Finding, lags []lag.Sample, spans []Span) (spansDropped bool, err error) {
	app := p.o.Storage.Appender()
	err = errors.Join(app.AppendEdges(edges), app.AppendNodes(nodes), app.AppendFindings(findings), app.AppendLag(lags))
	if len(spans) > 0 {
		if sa, ok := app.(SpanAppender); ok {
			err = errors.Join(err, sa.AppendSpans(spans))
		} else {
			spansDropped = true
		}
	}
	if err != nil {
		return spansDropped, errors.Join(err, app.Rollback())
	}
	return spansDropped, app.Commit(ctx)
}

// collect takes the newly closed edge buckets, the nodes seen in them and
// the findings whose state changed since they were last written.
func (p *Persister) collect() {
	var (
		edges []graph.EdgeBucket
		nodes []graph.NodeSeen
		upTo  time.Time
		fs    []finding.Finding
	)
	p.mu.Lock()
	after := p.lastEdges
	p.mu.Unlock()
	if p.o.Edges != nil {
		edges, upTo = p.o.Edges.ClosedBuckets(after)
		if ns, ok := p.o.Edges.(NodeSource); ok {
			// Same range as the edges: a bucket that closed between the
			// two calls is left to the next collect, edges and nodes alike.
			for _, n := range ns.ClosedNodes(after) {
				if !n.Start.After(upTo) {
					nodes = append(nodes, n)
				}
			}
		}
	}
	if p.o.Findings != nil {
		fs = p.o.Findings.Findings(0)
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	p.edges = append(p.edges, edges...)
	p.nodes = append(p.nodes, nodes...)
	p.lastEdges = upTo
	for _, f := range fs {
		m, ok := p.written[f.ID]
		// Firing findings are re-written about once a minute so that
		// last_seen stays meaningful without a row per evaluation.
		if !ok || m.state != f.State || m.severity != f.Severity || f.LastSeen.Sub(m.lastSeen) >= time.Minute {
			p.findings[f.ID] = f
		}
	}
	p.trimLocked()
}

// trimLocked drops the oldest buffered rows beyond MaxBuffered. Caller
// holds mu.
func (p *Persister) trimLocked() {
	n := p.bufferedLocked()
	p.full = n >= p.o.MaxBuffered
	if over := n - p.o.MaxBuffered; over > 0 {
		if k := min(over, len(p.lags)); k > 0 {
			p.lags = p.lags[k:]
			p.rows.WithLabelValues("lag", "dropped").Add(float64(k))
			over -= k
		}
		if k := min(over, len(p.nodes)); k > 0 {
			p.nodes = p.nodes[k:]
			p.rows.WithLabelValues("node", "dropped").Add(float64(k))
			over -= k
		}
		if k := min(over, len(p.edges)); k > 0 {
			p.edges = p.edges[k:]
			p.rows.WithLabelValues("edge", "dropped").Add(float64(k))
		}
	}
	p.buffered.Set(float64(p.bufferedLocked()))
}

// bufferedLocked is the rows waiting to be written. Caller holds mu.
func (p *Persister) bufferedLocked() int {
	return len(p.edges) + len(p.nodes) + len(p.findings) + len(p.lags)
}
