package embedded

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"time"

	bolt "go.etcd.io/bbolt"
)

// Reasons rows are deleted, the reason label of
// cartograph_embedded_rows_deleted_total.
const (
	reasonAge  = "age"
	reasonSize = "size"
)

// retain runs EnforceRetention at start, every RetentionInterval, and when
// a Commit takes the data beyond MaxBytes, until ctx is done.
func (s *Store) retain(ctx context.Context) {
	defer s.wg.Done()
	t := time.NewTicker(s.o.RetentionInterval)
	defer t.Stop()
	for {
		if err := s.EnforceRetention(ctx); err != nil && ctx.Err() == nil {
			s.o.Logger.Warn("embedded: retention failed; retrying at the next run", "err", err)
		}
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		case <-s.kick:
		}
	}
}

// EnforceRetention deletes the rows older than Options.Retention, then,
// while the live data exceeds Options.MaxBytes, the oldest edge buckets,
// nodes and lag samples until it is under 95% of it. It deletes in transactions
// of a bounded number of rows, so writers wait for one chunk at most, and
// stops early when ctx is done. The background goroutine calls it; call it
// directly when Options.RetentionInterval is negative.
func (s *Store) EnforceRetention(ctx context.Context) error {
	s.retMu.Lock()
	defer s.retMu.Unlock()
	deleted := map[string]int{}
	defer func() {
		for k, n := range deleted {
			if n > 0 {
				s.o.Logger.Info("embedded: retention deleted rows", "what", k, "rows", n)
			}
		}
	}()
	cutoff := unixNanos(s.o.Now().Add(-s.o.Retention))
	for _, kb := range timeKeyed {
		for {
			if err := ctx.Err(); err != nil {
				return err
			}
			n, err := s.deleteBefore(kb.bucket, kb.kind, cutoff)
			deleted[kb.kind+" by "+reasonAge] += n
			if err != nil {
				return err
			}
			if n < s.chunk {
				break
			}
		}
	}
	for {
		if err := ctx.Err(); err != nil {
			return err
		}
		n, err := s.deleteFindingsBefore(cutoff)
		deleted[kindFinding+" by "+reasonAge] += n
		if err != nil {
			return err
		}
		if n < s.chunk {
			break
		}
	}
	return s.enforceSize(ctx, deleted)
}

// deleteBefore deletes up to s.chunk rows of a time-keyed bucket older
// than cutoff, oldest first, in one transaction.
func (s *Store) deleteBefore(name []byte, kind string, cutoff int64) (int, error) {
	var keys [][]byte
	err := s.update(func(tx *bolt.Tx) error {
		keys = keys[:0]
		b := tx.Bucket(name)
		c := b.Cursor()
		hi := timePrefix(cutoff)
		for k, _ := c.First(); k != nil && len(keys) < s.chunk && bytes.Compare(k, hi[:]) < 0; k, _ = c.Next() {
			keys = append(keys, bytes.Clone(k))
		}
		return deleteKeys(tx, b, kind, keys)
	})
	if err != nil {
		return 0, fmt.Errorf("embedded: retention by age: %w", err)
	}
	s.m.deleted.WithLabelValues(kind, reasonAge).Add(float64(len(keys)))
	return len(keys), nil
}

// deleteFindingsBefore deletes up to s.chunk findings that ended (were
// resolved or, unresolved, last seen) before cutoff.
func (s *Store) deleteFindingsBefore(cutoff int64) (int, error) {
	var keys [][]byte
	err := s.update(func(tx *bolt.Tx) error {
		keys = keys[:0]
		b := tx.Bucket(bucketFindings)
		c := b.Cursor()
		for k, v := c.First(); k != nil && len(keys) < s.chunk; k, v = c.Next() {
			t, err := decodeFindingTimes(v)
			if err != nil || t.end() < cutoff {
				// A finding that cannot be read cannot be returned
				// either: it goes with the old ones.
				keys = append(keys, bytes.Clone(k))
			}
		}
		return deleteKeys(tx, b, kindFinding, keys)
	})
	if err != nil {
		return 0, fmt.Errorf("embedded: retention of findings: %w", err)
	}
	s.m.deleted.WithLabelValues(kindFinding, reasonAge).Add(float64(len(keys)))
	return len(keys), nil
}

func deleteKeys(tx *bolt.Tx, b *bolt.Bucket, kind string, keys [][]byte) error {
	for _, k := range keys {
		if err := b.Delete(k); err != nil {
			return err
		}
	}
	return addCount(tx, kind, -len(keys))
}

// timeKeyed are the time-keyed buckets size retention deletes from.
var timeKeyed = []struct {
	kind   string
	bucket []byte
}{{kindEdge, bucketEdges}, {kindNode, bucketNodes}, {kindLag, bucketLag}, {kindEdge1m, bucketEdges1m}, {kindNode1m, bucketNodes1m}}

// enforceSize deletes the oldest edge buckets, nodes and lag samples, a
// chunk per transaction, while the live data exceeds MaxBytes, down to
// lowWater of it. The rows to delete are estimated from the average size
// of a row; the size is measured again after each chunk.
func (s *Store) enforceSize(ctx context.Context, deleted map[string]int) error {
	target := s.o.MaxBytes
	for {
		if err := ctx.Err(); err != nil {
			return err
		}
		u, err := s.usage()
		if err != nil {
			return err
		}
		if u.live <= target {
			return nil
		}
		target = int64(float64(s.o.MaxBytes) * lowWater)
		var rows int64
		for _, tk := range timeKeyed {
			rows += int64(u.rows[tk.kind])
		}
		if rows == 0 {
			s.o.Logger.Warn("embedded: data exceeds max bytes with no edge, node or lag row left to delete",
				"live_bytes", u.live, "max_bytes", s.o.MaxBytes)
			return nil
		}
		per := max(u.live/rows, 1)
		n := min(max((u.live-target+per-1)/per, 1), int64(s.chunk))
		counts, err := s.deleteOldest(int(n))
		total := 0
		for i, tk := range timeKeyed {
			deleted[tk.kind+" by "+reasonSize] += counts[i]
			total += counts[i]
		}
		if err != nil {
			return err
		}
		if total == 0 {
			return nil
		}
	}
}

// deleteOldest deletes the n oldest rows of the time-keyed buckets
// together, in one transaction, and returns how many of each (in
// timeKeyed order).
func (s *Store) deleteOldest(n int) ([]int, error) {
	keys := make([][][]byte, len(timeKeyed))
	err := s.update(func(tx *bolt.Tx) error {
		bs := make([]*bolt.Bucket, len(timeKeyed))
		cs := make([]*bolt.Cursor, len(timeKeyed))
		heads := make([][]byte, len(timeKeyed))
		for i, tk := range timeKeyed {
			keys[i] = keys[i][:0]
			bs[i] = tx.Bucket(tk.bucket)
			cs[i] = bs[i].Cursor()
			heads[i], _ = cs[i].First()
		}
		for range n {
			best := -1
			for i, h := range heads {
				if h != nil && (best < 0 || bytes.Compare(h, heads[best]) < 0) {
					best = i
				}
			}
			if best < 0 {
				break
			}
			keys[best] = append(keys[best], bytes.Clone(heads[best]))
			heads[best], _ = cs[best].Next()
		}
		var errs []error
		for i, tk := range timeKeyed {
			errs = append(errs, deleteKeys(tx, bs[i], tk.kind, keys[i]))
		}
		return errors.Join(errs...)
	})
	counts := make([]int, len(timeKeyed))
	if err != nil {
		return counts, fmt.Errorf("embedded: retention by size: %w", err)
	}
	for i, tk := range timeKeyed {
		counts[i] = len(keys[i])
		s.m.deleted.WithLabelValues(tk.kind, reasonSize).Add(float64(counts[i]))
	}
	return counts, nil
}
