package main

import (
	"context"
	"time"
)

// waitBucketClose waits until the time bucket open now has closed (the
// graph's buckets are aligned on multiples of bucket since the Unix epoch),
// or ctx ends. At shutdown, once the receivers are closed, it lets the last
// bucket close so that the final flush can write it: a SIGTERM loses
// nothing, at the cost of at most one bucket width of waiting.
func waitBucketClose(ctx context.Context, bucket time.Duration) {
	if bucket <= 0 {
		return
	}
	now := time.Now().UnixNano()
	next := (now/int64(bucket) + 1) * int64(bucket)
	t := time.NewTimer(time.Duration(next-now) + 20*time.Millisecond)
	defer t.Stop()
	select {
	case <-t.C:
	case <-ctx.Done():
	}
}
