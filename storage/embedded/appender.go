package embedded

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"slices"
	"time"

	bolt "go.etcd.io/bbolt"

	"github.com/seed-a49a8342/cartograph/graph"
	"github.com/seed-a49a8342/cartograph/graph/finding"
	"github.com/seed-a49a8342/cartograph/graph/lag"
)

// appender buffers encoded rows in memory until Commit.
type appender struct {
	s        *Store
	buf      []byte // encoded edge, node and lag values, back to back
	edges    []row
	nodes    []row
	lags     []row
	findings []findingRow
	roll     rollupAcc // the batch's sums per minute
	done     bool
}

// row is a time-keyed row: Unix nanos and its value, buf[off:end].
type row struct {
	t        int64
	off, end int
}

type findingRow struct {
	id []byte
	v  []byte
}

// AppendEdges encodes buckets into the batch. On error none of them is
// added.
func (a *appender) AppendEdges(buckets []graph.EdgeBucket) error {
	if a.done {
		return ErrAppenderDone
	}
	mark, n := len(a.buf), len(a.edges)
	for i := range buckets {
		off := len(a.buf)
		var err error
		if a.buf, err = appendEdge(a.buf, &buckets[i]); err != nil {
			a.buf, a.edges = a.buf[:mark], a.edges[:n]
			return fmt.Errorf("embedded: edge bucket %s -> %s at %v: %w",
				buckets[i].Source.ID(), buckets[i].Target.ID(), buckets[i].Start, err)
		}
		a.edges = append(a.edges, row{t: unixNanos(buckets[i].Start), off: off, end: len(a.buf)})
	}
	for i := range buckets {
		a.roll.addEdge(&buckets[i])
	}
	return nil
}

// AppendFindings encodes findings into the batch; for each id the last
// one appended wins, and a committed finding replaces the stored one. On
// error none of them is added.
func (a *appender) AppendFindings(findings []finding.Finding) error {
	if a.done {
		return ErrAppenderDone
	}
	n := len(a.findings)
	for i := range findings {
		f := &findings[i]
		var err error
		if f.ID == "" || len(f.ID) > bolt.MaxKeySize {
			err = fmt.Errorf("embedded: finding id of %d bytes: must be 1 to %d", len(f.ID), bolt.MaxKeySize)
		}
		var v []byte
		if err == nil {
			v, err = encodeFinding(f)
		}
		if err != nil {
			a.findings = a.findings[:n]
			return err
		}
		a.findings = append(a.findings, findingRow{id: []byte(f.ID), v: v})
	}
	return nil
}

// AppendNodes encodes node rows into the batch.
func (a *appender) AppendNodes(nodes []graph.NodeSeen) error {
	if a.done {
		return ErrAppenderDone
	}
	for i := range nodes {
		off := len(a.buf)
		a.buf = appendNodeSeen(a.buf, &nodes[i])
		a.nodes = append(a.nodes, row{t: unixNanos(nodes[i].Start), off: off, end: len(a.buf)})
		a.roll.addNode(&nodes[i])
	}
	return nil
}

// AppendLag encodes samples into the batch.
func (a *appender) AppendLag(samples []lag.Sample) error {
	if a.done {
		return ErrAppenderDone
	}
	for i := range samples {
		off := len(a.buf)
		a.buf = appendLag(a.buf, &samples[i])
		a.lags = append(a.lags, row{t: unixNanos(samples[i].Time), off: off, end: len(a.buf)})
	}
	return nil
}

// Commit writes the batch in one read-write transaction; when it returns
// nil the batch is on disk (fsynced). ctx is checked before the
// transaction starts writing; once it does, it completes.
func (a *appender) Commit(ctx context.Context) error {
	if a.done {
		return ErrAppenderDone
	}
	a.done = true
	defer a.release()
	if len(a.edges)+len(a.nodes)+len(a.lags)+len(a.findings) == 0 {
		return nil
	}
	if err := ctx.Err(); err != nil {
		return fmt.Errorf("embedded: commit: %w", err)
	}
	s := a.s
	// Time order is insertion order at the right edge of the tree, the
	// cheapest for bbolt, and gives rows of equal time their write order.
	byTime := func(x, y row) int { return cmp.Compare(x.t, y.t) }
	slices.SortStableFunc(a.edges, byTime)
	slices.SortStableFunc(a.nodes, byTime)
	slices.SortStableFunc(a.lags, byTime)
	keys := make([]byte, keyLen*(len(a.edges)+len(a.nodes)+len(a.lags)))
	newFindings, newEdges1m, newNodes1m := 0, 0, 0
	start := time.Now()
	err := s.update(func(tx *bolt.Tx) error {
		if err := ctx.Err(); err != nil {
			return err
		}
		var err error
		if keys, err = a.put(tx.Bucket(bucketEdges), a.edges, keys); err != nil {
			return err
		}
		if keys, err = a.put(tx.Bucket(bucketNodes), a.nodes, keys); err != nil {
			return err
		}
		if _, err = a.put(tx.Bucket(bucketLag), a.lags, keys); err != nil {
			return err
		}
		fb := tx.Bucket(bucketFindings)
		for _, f := range a.findings {
			if fb.Get(f.id) == nil { // also sees the puts of this batch
				newFindings++
			}
			if err := fb.Put(f.id, f.v); err != nil {
				return err
			}
		}
		if newEdges1m, newNodes1m, err = a.roll.write(tx); err != nil {
			return err
		}
		return errors.Join(addCount(tx, kindEdge, len(a.edges)), addCount(tx, kindNode, len(a.nodes)), addCount(tx, kindLag, len(a.lags)),
			addCount(tx, kindFinding, newFindings), addCount(tx, kindEdge1m, newEdges1m), addCount(tx, kindNode1m, newNodes1m))
	})
	if err != nil {
		return fmt.Errorf("embedded: commit: %w", err)
	}
	s.m.commit.Observe(time.Since(start).Seconds())
	s.m.written.WithLabelValues(kindEdge).Add(float64(len(a.edges)))
	s.m.written.WithLabelValues(kindNode).Add(float64(len(a.nodes)))
	s.m.written.WithLabelValues(kindLag).Add(float64(len(a.lags)))
	s.m.written.WithLabelValues(kindFinding).Add(float64(len(a.findings)))
	s.m.written.WithLabelValues(kindEdge1m).Add(float64(newEdges1m))
	s.m.written.WithLabelValues(kindNode1m).Add(float64(newNodes1m))
	if u, err := s.usage(); err == nil && u.live > s.o.MaxBytes {
		select {
		case s.kick <- struct{}{}:
		default:
		}
	}
	return nil
}

// put writes rows into b under fresh keys cut from keys, and returns the
// keys left.
func (a *appender) put(b *bolt.Bucket, rows []row, keys []byte) ([]byte, error) {
	b.FillPercent = fillPercent
	for _, r := range rows {
		seq, err := b.NextSequence()
		if err != nil {
			return keys, err
		}
		k := keys[:keyLen:keyLen]
		keys = keys[keyLen:]
		putKey(k, r.t, seq)
		if err := b.Put(k, a.buf[r.off:r.end]); err != nil {
			return keys, err
		}
	}
	return keys, nil
}

// Rollback discards the batch.
func (a *appender) Rollback() error {
	if a.done {
		return ErrAppenderDone
	}
	a.done = true
	a.release()
	return nil
}

func (a *appender) release() {
	a.buf, a.edges, a.nodes, a.lags, a.findings, a.roll = nil, nil, nil, nil, nil, rollupAcc{}
}
