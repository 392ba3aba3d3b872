package lag

import (
	"fmt"
	"math"
	"math/rand/v2"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
	"github.com/stretchr/testify/require"
)

// t0 is "now" in the tests: readings are placed relative to it.
var t0 = time.Date(2026, 7, 1, 12, 0, 0, 0, time.UTC)

// clock is an injected, settable clock.
type clock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *clock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.t
}

func (c *clock) Set(t time.Time) {
	c.mu.Lock()
	c.t = t
	c.mu.Unlock()
}

func newStore(t testing.TB, o Options) (*Store, *clock) {
	t.Helper()
	clk := &clock{t: t0}
	o.Now = clk.Now
	s, err := New(o)
	require.NoError(t, err)
	return s, clk
}

func kafkaKey(part int32) Key {
	return Key{System: "kafka", Destination: "orders", Group: "billing", Partition: part}
}

var kafkaGroup = GroupKey{System: "kafka", Destination: "orders", Group: "billing"}

// kafka returns a Kafka-like reading ago before t0: offsets known, lag left
// for the store to derive, one consumer.
func kafka(part int32, ago time.Duration, end, committed float64) Sample {
	return Sample{
		Time: t0.Add(-ago), Key: kafkaKey(part),
		Lag: Unknown, End: end, Committed: committed, Consumers: 1,
		Produced: Unknown, Consumed: Unknown, Source: "kafka:poller",
	}
}

// every returns n readings 10s apart ending at t0, reading i made by f.
func every(n int, f func(i int, ago time.Duration) Sample) []Sample {
	out := make([]Sample, n)
	for i := range n {
		out[i] = f(i, time.Duration(n-1-i)*10*time.Second)
	}
	return out
}

func only(t *testing.T, st []Status) Status {
	t.Helper()
	require.Len(t, st, 1)
	return st[0]
}

func requireNear(t *testing.T, want float64, got *float64, what string) {
	t.Helper()
	require.NotNil(t, got, what)
	require.InDelta(t, want, *got, 1e-9, what)
}

func TestEvaluateRules(t *testing.T) {
	tests := []struct {
		name    string
		window  time.Duration
		samples []Sample
		check   func(t *testing.T, st Status)
	}{{
		name: "growing lag is a warning",
		samples: every(7, func(i int, ago time.Duration) Sample {
			return kafka(0, ago, 1000+100*float64(i), 900+50*float64(i)) // lag 100 .. 400
		}),
		check: func(t *testing.T, st Status) {
			require.Equal(t, StateWarning, st.State)
			require.Equal(t, "falling behind: lag grew from 100 to 400 messages in 1m0s", st.Reason)
			require.Equal(t, 400.0, *st.Messages)
			requireNear(t, 10, st.ProduceRate, "produce rate")
			requireNear(t, 5, st.ConsumeRate, "consume rate")
			require.Nil(t, st.DrainSeconds, "not draining")
		},
	}, {
		name: "behind but catching up is ok with a drain time",
		samples: every(7, func(i int, ago time.Duration) Sample {
			// 10/s produced, 20/s consumed: lag 1000 .. 400.
			return kafka(0, ago, 10000+100*float64(i), 9000+200*float64(i))
		}),
		check: func(t *testing.T, st Status) {
			require.Equal(t, StateOK, st.State)
			require.Equal(t, 400.0, *st.Messages)
			requireNear(t, 10, st.ProduceRate, "produce rate")
			requireNear(t, 20, st.ConsumeRate, "consume rate")
			requireNear(t, 40, st.DrainSeconds, "400 messages at a net 10/s")
			// Committed 10200 was the head 40s ago (End 10000 + 2*100).
			requireNear(t, 40, st.Seconds, "time lag")
			require.Equal(t, "behind by 400 messages but catching up, drained in about 40s at the current rates", st.Reason)
		},
	}, {
		name: "position stuck with lag is stalled",
		samples: every(7, func(i int, ago time.Duration) Sample {
			return kafka(0, ago, 1000+100*float64(i), 500)
		}),
		check: func(t *testing.T, st Status) {
			require.Equal(t, StateStalled, st.State)
			require.Equal(t, "position stuck at 500 while lag is 1100 messages", st.Reason)
			requireNear(t, 10, st.ProduceRate, "produce rate")
			requireNear(t, 0, st.ConsumeRate, "consume rate")
			require.Nil(t, st.DrainSeconds)
		},
	}, {
		name: "stuck and growing over less than half the window is not judged yet",
		samples: every(3, func(i int, ago time.Duration) Sample {
			return kafka(0, ago, 1000+100*float64(i), 500) // 20s of a 1m window
		}),
		check: func(t *testing.T, st Status) {
			require.Equal(t, StateOK, st.State)
		},
	}, {
		name: "no consumers with lag is stopped",
		samples: every(7, func(i int, ago time.Duration) Sample {
			s := kafka(0, ago, 1000, 900+10*float64(i))
			if i >= 3 { // the last 30 s
				s.Consumers = 0
			}
			return s
		}),
		check: func(t *testing.T, st Status) {
			require.Equal(t, StateStopped, st.State)
			require.Equal(t, "no consumers while lag is 40 messages", st.Reason)
			requireNear(t, 0, st.Consumers, "consumers")
		},
	}, {
		name: "no consumers at one reading, a rebalance, is not stopped",
		samples: every(7, func(i int, ago time.Duration) Sample {
			s := kafka(0, ago, 1000+100*float64(i), 900+100*float64(i))
			if i >= 5 {
				s.Committed = 1400 // paused since the reading 20 s ago
			}
			if i == 6 {
				s.Consumers = 0
			}
			return s
		}),
		check: func(t *testing.T, st Status) {
			require.Equal(t, StateOK, st.State)
		},
	}, {
		name: "recently caught up is ok even if now stuck without consumers",
		samples: every(7, func(i int, ago time.Duration) Sample {
			s := kafka(0, ago, 1000+100*float64(max(0, i-4)), 1000) // lag 0 until 20s ago, then stuck and growing
			s.Consumers = 0
			return s
		}),
		check: func(t *testing.T, st Status) {
			require.Equal(t, StateOK, st.State)
			require.Equal(t, "caught up at 2026-07-01T11:59:40Z, 200 messages behind now", st.Reason)
		},
	}, {
		name: "idle topic is ok",
		samples: every(7, func(i int, ago time.Duration) Sample {
			return kafka(0, ago, 500, 500)
		}),
		check: func(t *testing.T, st Status) {
			require.Equal(t, StateOK, st.State)
			require.Equal(t, "idle: no lag and nothing produced", st.Reason)
			require.Equal(t, 0.0, *st.Messages)
			requireNear(t, 0, st.ProduceRate, "produce rate")
			requireNear(t, 0, st.DrainSeconds, "drain")
			requireNear(t, 0, st.Seconds, "time lag")
		},
	}, {
		name: "lag that falls and rises is ok",
		samples: every(5, func(i int, ago time.Duration) Sample {
			return kafka(0, ago, 1000+100*float64(i), 900+[]float64{0, 150, 150, 300, 350}[i])
		}),
		check: func(t *testing.T, st Status) {
			require.Equal(t, StateOK, st.State)
			require.Equal(t, "behind by 150 messages, not growing steadily", st.Reason)
			require.Nil(t, st.DrainSeconds, "consume 8.75/s < produce 10/s")
		},
	}, {
		name: "poller stopped is stale with the last numbers kept",
		samples: every(7, func(i int, ago time.Duration) Sample {
			return kafka(0, ago+5*time.Minute, 1000+100*float64(i), 900+50*float64(i))
		}),
		check: func(t *testing.T, st Status) {
			require.Equal(t, StateStale, st.State)
			require.Equal(t, "no reading since 2026-07-01T11:55:00Z (5m0s ago), when the lag was 400 messages", st.Reason)
			require.Equal(t, 400.0, *st.Messages)
			require.Equal(t, t0.Add(-5*time.Minute), st.UpdatedAt)
			requireNear(t, 1, st.Consumers, "consumers")
			require.Nil(t, st.ProduceRate, "no reading in the window")
			require.Nil(t, st.ConsumeRate)
			require.Nil(t, st.DrainSeconds)
			// As of the last reading: committed 1200 was the head 40s before it.
			requireNear(t, 40, st.Seconds, "time lag")
		},
	}, {
		name:   "readings older than stale-after in a long window are stale",
		window: 5 * time.Minute,
		samples: every(7, func(i int, ago time.Duration) Sample {
			return kafka(0, ago+3*time.Minute, 1000, 1000)
		}),
		check: func(t *testing.T, st Status) {
			require.Equal(t, StateStale, st.State)
			require.Equal(t, "no reading since 2026-07-01T11:57:00Z (3m0s ago), when the lag was 0 messages", st.Reason)
			requireNear(t, 0, st.DrainSeconds, "no lag at the last reading")
		},
	}, {
		name: "one stalled partition of two stalls the group",
		samples: append(
			every(7, func(i int, ago time.Duration) Sample {
				return kafka(0, ago, 1000+100*float64(i), 1000+100*float64(i)-20)
			}),
			every(7, func(i int, ago time.Duration) Sample { return kafka(1, ago, 2000+100*float64(i), 1700) })...),
		check: func(t *testing.T, st Status) {
			require.Equal(t, StateStalled, st.State)
			require.Equal(t, "position stuck at 1700 while lag is 900 messages on partition 1", st.Reason)
			require.Equal(t, 2, st.Partitions)
			require.Equal(t, 920.0, *st.Messages)
			requireNear(t, 20, st.ProduceRate, "sum over partitions")
			requireNear(t, 10, st.ConsumeRate, "sum over partitions")
		},
	}, {
		name: "a stale partition is left out of the state but named",
		samples: append(
			every(7, func(i int, ago time.Duration) Sample { return kafka(0, ago, 1000+100*float64(i), 1000+100*float64(i)) }),
			kafka(1, 10*time.Minute, 5000, 4000)),
		check: func(t *testing.T, st Status) {
			require.Equal(t, StateOK, st.State)
			require.Equal(t, "caught up at 2026-07-01T12:00:00Z, 1000 messages behind now; partition 1 has had no reading since 2026-07-01T11:50:00Z", st.Reason)
			require.Equal(t, 1000.0, *st.Messages, "the stale partition's lag counts")
			require.Equal(t, 2, st.Partitions)
		},
	}, {
		name: "every partition falling behind",
		samples: append(
			every(7, func(i int, ago time.Duration) Sample { return kafka(0, ago, 1000+100*float64(i), 900+50*float64(i)) }),
			every(7, func(i int, ago time.Duration) Sample { return kafka(1, ago, 1000+100*float64(i), 960+50*float64(i)) })...),
		check: func(t *testing.T, st Status) {
			require.Equal(t, StateWarning, st.State)
			require.Equal(t, "falling behind: lag grew from 100 to 400 messages in 1m0s on partition 0 (and on 1 other partition)", st.Reason,
				"one partition's numbers, not two partitions' summed")
		},
	}, {
		name: "all partitions stale",
		samples: []Sample{
			kafka(0, 4*time.Minute, 1000, 990), kafka(1, 3*time.Minute, 1000, 980), kafka(2, 5*time.Minute, 1000, 1000),
		},
		check: func(t *testing.T, st Status) {
			require.Equal(t, StateStale, st.State)
			require.Equal(t, "no reading since 2026-07-01T11:57:00Z (3m0s ago), when the lag was 30 messages", st.Reason)
			require.Equal(t, t0.Add(-3*time.Minute), st.UpdatedAt)
			require.Equal(t, 3, st.Partitions)
		},
	}, {
		name: "some partitions stale",
		samples: []Sample{
			kafka(0, 4*time.Minute, 1000, 990), kafka(1, 0, 1000, 980), kafka(2, 5*time.Minute, 1000, 1000),
		},
		check: func(t *testing.T, st Status) {
			require.Equal(t, StateOK, st.State)
			require.Equal(t, "behind by 30 messages, not growing steadily; 2 of 3 partitions have had no reading for 4m0s or more", st.Reason)
		},
	}, {
		name: "queue with counters and a counter reset",
		samples: every(7, func(i int, ago time.Duration) Sample {
			return Sample{
				Time: t0.Add(-ago), Key: Key{System: "rabbitmq", Destination: "emails", Partition: -1},
				Lag: 130, Committed: Unknown, End: Unknown, Consumers: 2,
				Produced: []float64{100, 200, 300, 50, 150, 250, 350}[i], // reset to 0 then +50
				Consumed: []float64{90, 190, 290, 390, 20, 120, 220}[i],  // reset to 0 then +20
				Source:   "rabbitmq:mgmt",
			}
		}),
		check: func(t *testing.T, st Status) {
			require.Equal(t, StateOK, st.State)
			requireNear(t, 550.0/60, st.ProduceRate, "produce rate")
			requireNear(t, 520.0/60, st.ConsumeRate, "consume rate")
			requireNear(t, 130/(550.0/60), st.Seconds, "age of the head of the backlog")
			require.Nil(t, st.DrainSeconds, "consumers slower than producers")
			require.Equal(t, []string{"rabbitmq:mgmt"}, st.Sources)
		},
	}, {
		name: "queue whose consumed count does not move is stalled",
		samples: every(7, func(i int, ago time.Duration) Sample {
			return Sample{
				Time: t0.Add(-ago), Key: Key{System: "rabbitmq", Destination: "emails", Partition: -1},
				Lag: 50 + 10*float64(i), Committed: Unknown, End: Unknown, Consumers: 1,
				Produced: 1000 + 10*float64(i), Consumed: 950,
			}
		}),
		check: func(t *testing.T, st Status) {
			require.Equal(t, StateStalled, st.State)
			require.Equal(t, "consumed count stuck at 950 while lag is 110 messages", st.Reason)
			require.Nil(t, st.Sources)
		},
	}}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s, _ := newStore(t, Options{})
			require.Zero(t, s.Add(tt.samples))
			w := tt.window
			if w == 0 {
				w = time.Minute
			}
			st := only(t, s.Evaluate(w))
			require.Equal(t, tt.samples[0].System, st.System)
			tt.check(t, st)
		})
	}
}

func TestTimeLag(t *testing.T) {
	tests := []struct {
		name    string
		samples []Sample
		want    float64
	}{{
		name: "interpolated between readings",
		samples: []Sample{
			kafka(0, 60*time.Second, 1000, 900),
			kafka(0, 50*time.Second, 1200, 950),
			kafka(0, 40*time.Second, 1300, 1000),
			kafka(0, 0, 1700, 1050), // 1050 was the head at 60 - 10*50/200 = 57.5s ago
		},
		want: 57.5,
	}, {
		name: "head flat at the committed offset: the first reading at it",
		samples: []Sample{
			kafka(0, 60*time.Second, 1000, 900),
			kafka(0, 50*time.Second, 1100, 950),
			kafka(0, 40*time.Second, 1100, 1000),
			kafka(0, 0, 1300, 1100),
		},
		want: 50,
	}, {
		name: "extrapolated back before the oldest reading",
		samples: every(7, func(i int, ago time.Duration) Sample {
			// 10/s; committed 1900 was the head 10s before the oldest reading.
			return kafka(0, ago, 2000+100*float64(i), 1900)
		}),
		want: 70,
	}, {
		name: "history kept beyond the window is used",
		samples: append(every(4, func(i int, ago time.Duration) Sample {
			return kafka(0, ago+2*time.Minute, 1000+100*float64(i), 1000+100*float64(i))
		}), kafka(0, 0, 3000, 1150)), // 1150 was the head at 2m15s ago
		want: 135,
	}, {
		name: "evaluated at now, after the newest reading",
		samples: []Sample{
			kafka(0, 40*time.Second, 1000, 900),
			kafka(0, 20*time.Second, 1200, 1100), // 1100 was the head 30s ago
		},
		want: 30,
	}}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s, _ := newStore(t, Options{})
			require.Zero(t, s.Add(tt.samples))
			st := only(t, s.Evaluate(time.Minute))
			requireNear(t, tt.want, st.Seconds, "time lag")
		})
	}

	t.Run("unknown without offsets or a produce rate", func(t *testing.T) {
		s, _ := newStore(t, Options{})
		require.Zero(t, s.Add([]Sample{{Time: t0, Key: Key{System: "nats", Destination: "jobs", Group: "w", Partition: -1},
			Lag: 12, Committed: Unknown, End: Unknown, Consumers: Unknown, Produced: Unknown, Consumed: Unknown}}))
		st := only(t, s.Evaluate(time.Minute))
		require.Nil(t, st.Seconds)
		require.Nil(t, st.ProduceRate, "one reading")
		require.Nil(t, st.Consumers)
		require.Nil(t, st.DrainSeconds)
		require.Equal(t, 12.0, *st.Messages)
		require.Equal(t, StateOK, st.State)
	})
}

func TestGroupsSortedAndSeparate(t *testing.T) {
	s, _ := newStore(t, Options{})
	mk := func(sys, dest, group string, part int32, lag float64) Sample {
		return Sample{Time: t0, Key: Key{sys, dest, group, part}, Lag: lag, Committed: Unknown, End: Unknown,
			Consumers: Unknown, Produced: Unknown, Consumed: Unknown, Source: sys}
	}
	require.Zero(t, s.Add([]Sample{
		mk("nats", "b", "g", -1, 1), mk("kafka", "b", "g", 0, 2), mk("kafka", "a", "h", 0, 3),
		mk("kafka", "a", "g", 1, 4), mk("kafka", "a", "g", 0, 5),
	}))
	st := s.Evaluate(time.Minute)
	var got []GroupKey
	for _, x := range st {
		got = append(got, x.GroupKey)
	}
	require.Equal(t, []GroupKey{{"kafka", "a", "g"}, {"kafka", "a", "h"}, {"kafka", "b", "g"}, {"nats", "b", "g"}}, got)
	require.Equal(t, 9.0, *st[0].Messages)
	require.Equal(t, 2, st[0].Partitions)
	require.Equal(t, t0, st[0].UpdatedAt)
}

func TestOutOfOrderAdds(t *testing.T) {
	in := every(12, func(i int, ago time.Duration) Sample {
		return kafka(0, ago, 1000+100*float64(i), 900+80*float64(i))
	})
	ordered, _ := newStore(t, Options{})
	require.Zero(t, ordered.Add(in))
	want := ordered.Evaluate(time.Minute)

	shuffled := append([]Sample(nil), in...)
	rand.New(rand.NewPCG(1, 2)).Shuffle(len(shuffled), func(i, j int) { shuffled[i], shuffled[j] = shuffled[j], shuffled[i] })
	// A wrong reading first, replaced later by one at the same time.
	wrong := in[5]
	wrong.Committed = 0
	s, _ := newStore(t, Options{})
	require.Zero(t, s.Add([]Sample{wrong}))
	for i := 0; i < len(shuffled); i += 5 {
		require.Zero(t, s.Add(shuffled[i:min(i+5, len(shuffled))]))
	}
	require.Equal(t, want, s.Evaluate(time.Minute))

	pts := s.keys[kafkaKey(0)].pts()
	require.Len(t, pts, len(in))
	for i, p := range pts {
		require.Equal(t, in[i].Time.UnixNano(), p.t)
		require.Equal(t, in[i].Committed, p.v[fCommitted])
	}
}

func TestMaxSamplesPerKey(t *testing.T) {
	s, _ := newStore(t, Options{MaxSamplesPerKey: 3})
	in := every(5, func(i int, ago time.Duration) Sample { return kafka(0, ago, float64(i), 0) })
	require.Zero(t, s.Add(in[1:]))
	pts := s.keys[kafkaKey(0)].pts()
	require.Len(t, pts, 3)
	require.Equal(t, in[2].Time.UnixNano(), pts[0].t, "the oldest dropped first")
	require.Equal(t, 1.0, testutil.ToFloat64(s.evicted))

	// Older than the whole full history: nowhere to keep it.
	require.Equal(t, 1, s.Add(in[:1]))
	require.Equal(t, 1.0, testutil.ToFloat64(s.samples.WithLabelValues(outcomeRejectedLimit)))

	// Between held readings: kept, and the oldest goes.
	mid := kafka(0, 15*time.Second, 9, 0)
	require.Zero(t, s.Add([]Sample{mid}))
	pts = s.keys[kafkaKey(0)].pts()
	require.Equal(t, []int64{mid.Time.UnixNano(), in[3].Time.UnixNano(), in[4].Time.UnixNano()}, []int64{pts[0].t, pts[1].t, pts[2].t})
	require.Equal(t, 2.0, testutil.ToFloat64(s.evicted))
	require.Equal(t, 5.0, testutil.ToFloat64(s.samples.WithLabelValues(outcomeAccepted)))
}

func TestSeriesRingReusesBuffer(t *testing.T) {
	var sr series
	for i := range 10_000 {
		kept, _ := sr.insert(point{t: int64(i)}, 16)
		require.True(t, kept)
	}
	pts := sr.pts()
	require.Len(t, pts, 16)
	require.Equal(t, int64(10_000-16), pts[0].t)
	require.LessOrEqual(t, cap(sr.buf), 64, "slack is reclaimed, not grown")
	for i := 1; i < len(pts); i++ {
		require.Equal(t, pts[i-1].t+1, pts[i].t)
	}
}

func TestMaxKeysAndForget(t *testing.T) {
	reg := prometheus.NewPedanticRegistry()
	s, clk := newStore(t, Options{MaxKeys: 2, Registerer: reg})
	require.Equal(t, 1, s.Add([]Sample{kafka(0, 0, 1, 1), kafka(1, 0, 1, 1), kafka(2, 0, 1, 1), kafka(0, 0, 2, 2)}))
	require.Equal(t, 1.0, testutil.ToFloat64(s.samples.WithLabelValues(outcomeRejectedLimit)))
	require.Equal(t, 3.0, testutil.ToFloat64(s.samples.WithLabelValues(outcomeAccepted)))
	require.Equal(t, 2.0, testutil.ToFloat64(s.nkeys))
	require.Equal(t, 2, only(t, s.Evaluate(time.Minute)).Partitions)

	// Past retention: not evaluated even before Forget, then forgotten.
	clk.Set(t0.Add(16 * time.Minute))
	require.Empty(t, s.Evaluate(time.Minute))
	require.Equal(t, 2, s.Forget())
	require.Equal(t, 0.0, testutil.ToFloat64(s.nkeys))
	require.Empty(t, s.groups)

	// Room again; at the limit, Add sweeps expired keys itself.
	late := func(part int32) Sample {
		x := kafka(part, 0, 1, 1)
		x.Time = clk.Now()
		return x
	}
	require.Zero(t, s.Add([]Sample{late(3), late(4)}))
	clk.Set(clk.Now().Add(16 * time.Minute))
	require.Zero(t, s.Add([]Sample{late(5)}))
	require.Equal(t, 1, only(t, s.Evaluate(time.Minute)).Partitions)

	n, err := testutil.GatherAndCount(reg, "cartograph_lag_samples_total", "cartograph_lag_keys", "cartograph_lag_samples_evicted_total")
	require.NoError(t, err)
	require.Equal(t, 5, n)
}

func TestAddSweepsAtKeyLimit(t *testing.T) {
	// Periodic sweeps every 40s; the key limit forces one sooner.
	s, clk := newStore(t, Options{MaxKeys: 1, Retention: 90 * time.Second, StaleAfter: 80 * time.Second})
	require.Zero(t, s.Add([]Sample{kafka(0, 85*time.Second, 1, 1)}))
	clk.Set(t0.Add(2 * time.Second))
	require.Equal(t, 1, s.Add([]Sample{kafka(1, 0, 1, 1)}), "swept, but the first key is still live")
	clk.Set(t0.Add(10 * time.Second))
	require.Zero(t, s.Add([]Sample{kafka(1, 0, 1, 1)}), "the first key has expired")
	require.Contains(t, s.keys, kafkaKey(1))
	require.NotContains(t, s.keys, kafkaKey(0))
}

func TestSources(t *testing.T) {
	s, clk := newStore(t, Options{})
	a, b, c := kafka(0, 10*time.Minute, 1, 1), kafka(1, 0, 1, 1), kafka(0, 0, 1, 1)
	a.Source, b.Source, c.Source = "otlp", "kafka:poller-2", ""
	require.Zero(t, s.Add([]Sample{a, b, c}))
	require.Equal(t, []string{"kafka:poller-2", "otlp"}, only(t, s.Evaluate(time.Minute)).Sources)
	clk.Set(t0.Add(6 * time.Minute)) // a is past retention
	require.Equal(t, []string{"kafka:poller-2"}, only(t, s.Evaluate(time.Minute)).Sources)

	var sr series
	for i := range maxSources + 2 {
		sr.seen(fmt.Sprintf("src-%d", i), int64(i))
	}
	require.Len(t, sr.srcs, maxSources, "bounded; the least recently seen go")
	require.NotContains(t, sr.srcs, source{"src-0", 0})
}

func TestForgetKeepsLiveKeysAndTrims(t *testing.T) {
	s, clk := newStore(t, Options{Retention: 5 * time.Minute})
	require.Zero(t, s.Add([]Sample{kafka(0, 4*time.Minute, 1, 1), kafka(0, 0, 2, 2), kafka(1, 4*time.Minute, 1, 1)}))
	clk.Set(t0.Add(2 * time.Minute))
	require.Equal(t, 1, s.Forget())
	require.Len(t, s.keys, 1)
	require.Len(t, s.keys[kafkaKey(0)].pts(), 1, "the expired reading is trimmed")
	require.Len(t, s.groups[kafkaGroup].series, 1)
	require.Equal(t, 0, s.groups[kafkaGroup].series[0].gi)
}

func TestInvalidSamplesRejected(t *testing.T) {
	good := kafka(0, 0, 10, 5)
	mod := func(f func(*Sample)) Sample {
		x := good
		f(&x)
		return x
	}
	tests := []struct {
		name string
		in   Sample
	}{
		{"NaN lag", mod(func(x *Sample) { x.Lag = math.NaN() })},
		{"NaN offset", mod(func(x *Sample) { x.End = math.NaN() })},
		{"infinite counter", mod(func(x *Sample) { x.Produced = math.Inf(1) })},
		{"no system", mod(func(x *Sample) { x.System = "" })},
		{"no destination", mod(func(x *Sample) { x.Destination = "" })},
		{"no time", mod(func(x *Sample) { x.Time = time.Time{} })},
		{"older than retention", mod(func(x *Sample) { x.Time = t0.Add(-16 * time.Minute) })},
		{"from the future", mod(func(x *Sample) { x.Time = t0.Add(3 * time.Minute) })},
		{"bad partition", mod(func(x *Sample) { x.Partition = -2 })},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s, _ := newStore(t, Options{})
			require.Equal(t, 1, s.Add([]Sample{tt.in, good}))
			require.Equal(t, 1.0, testutil.ToFloat64(s.samples.WithLabelValues(outcomeRejectedInvalid)))
			require.Equal(t, 1.0, testutil.ToFloat64(s.samples.WithLabelValues(outcomeAccepted)))
			require.Len(t, s.keys, 1)
		})
	}
}

func TestLagDerivedAndNegativesUnknown(t *testing.T) {
	s, _ := newStore(t, Options{})
	x := kafka(0, 0, 100, 40)
	x.Consumers = -3
	require.Zero(t, s.Add([]Sample{x}))
	st := only(t, s.Evaluate(time.Minute))
	require.Equal(t, 60.0, *st.Messages)
	require.Nil(t, st.Consumers)
}

func TestOptions(t *testing.T) {
	tests := []struct {
		name string
		o    Options
		ok   bool
	}{
		{"defaults", Options{}, true},
		{"negative retention", Options{Retention: -time.Minute}, false},
		{"stale after retention", Options{Retention: time.Minute, StaleAfter: 2 * time.Minute}, false},
		{"negative keys", Options{MaxKeys: -1}, false},
		{"one sample per key", Options{MaxSamplesPerKey: 1}, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := New(tt.o)
			if tt.ok {
				require.NoError(t, err)
			} else {
				require.Error(t, err)
			}
		})
	}

	t.Run("metrics registered once", func(t *testing.T) {
		reg := prometheus.NewRegistry()
		_, err := New(Options{Registerer: reg})
		require.NoError(t, err)
		_, err = New(Options{Registerer: reg})
		require.Error(t, err)
	})
}

func TestConcurrentAddEvaluate(t *testing.T) {
	s, clk := newStore(t, Options{MaxKeys: 50})
	var wg sync.WaitGroup
	for g := range 4 {
		wg.Go(func() {
			for i := range 200 {
				x := kafka(int32(i%60), time.Duration(i)*time.Second, float64(1000+i), float64(900+g))
				s.Add([]Sample{x})
				if i%50 == 0 {
					s.Forget()
				}
			}
		})
		wg.Go(func() {
			for range 50 {
				for _, st := range s.Evaluate(time.Minute) {
					if st.State == 0 || st.Partitions == 0 {
						t.Errorf("incomplete status %+v", st)
					}
				}
				clk.Set(clk.Now().Add(time.Millisecond))
			}
		})
	}
	wg.Wait()
	require.LessOrEqual(t, len(s.keys), 50)
}

func TestStateText(t *testing.T) {
	for st := StateOK; st <= StateStale; st++ {
		b, err := st.MarshalText()
		require.NoError(t, err)
		var back State
		require.NoError(t, back.UnmarshalText(b))
		require.Equal(t, st, back)
	}
	var s State
	require.Error(t, s.UnmarshalText([]byte("fine")))
}

// benchSamples returns one poll round (groups x partitions readings at t)
// per round, rounds 10s apart ending at t0.
func benchSamples(groups, parts, rounds int) [][]Sample {
	out := make([][]Sample, rounds)
	for r := range rounds {
		t := t0.Add(-time.Duration(rounds-1-r) * 10 * time.Second)
		batch := make([]Sample, 0, groups*parts)
		for g := range groups {
			for p := range parts {
				end := float64(1000 + 100*r + g)
				batch = append(batch, Sample{
					Time: t, Key: Key{System: "kafka", Destination: fmt.Sprintf("topic-%d", g%100), Group: fmt.Sprintf("group-%d", g), Partition: int32(p)},
					Lag: Unknown, End: end, Committed: end - float64((g*p+r)%50), Consumers: 3,
					Produced: Unknown, Consumed: Unknown, Source: "kafka:poller",
				})
			}
		}
		out[r] = batch
	}
	return out
}

// BenchmarkStore: 1,000 groups x 10 partitions x 20 readings.
func BenchmarkStore(b *testing.B) {
	rounds := benchSamples(1000, 10, 20)

	b.Run("add-all", func(b *testing.B) { // 200,000 samples into an empty store
		b.ReportAllocs()
		for b.Loop() {
			s, _ := newStore(b, Options{})
			for _, r := range rounds {
				s.Add(r)
			}
		}
		b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N*200_000), "ns/sample")
	})

	full, clk := newStore(b, Options{})
	for _, r := range rounds {
		full.Add(r)
	}
	b.Run("add-round", func(b *testing.B) { // 10,000 newer samples into the full store
		b.ReportAllocs()
		next := rounds[len(rounds)-1]
		i := 0
		for b.Loop() {
			i++
			now := t0.Add(time.Duration(i) * time.Second)
			clk.Set(now)
			for j := range next {
				next[j].Time = now
			}
			full.Add(next)
		}
	})

	s, _ := newStore(b, Options{})
	for _, r := range rounds {
		s.Add(r)
	}
	b.Run("evaluate", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			if st := s.Evaluate(time.Minute); len(st) != 1000 {
				b.Fatalf("%d statuses", len(st))
			}
		}
	})
}

// TestGroupSumFallsBehind: twelve partitions with ten minutes of history
// whose lags jitter by a few messages (each reading 15 s apart) start
// falling behind by about 4 messages a poll each: no partition has risen
// three times clear of its own jitter after two polls, the group's summed
// lag (about 45 a poll) has, and the group is falling behind then. The
// same partitions without the trend stay OK.
func TestGroupSumFallsBehind(t *testing.T) {
	for _, tc := range []struct {
		name  string
		trend float64
		want  State
	}{{"falling behind", 4, StateWarning}, {"jitter only", 0, StateOK}} {
		t.Run(tc.name, func(t *testing.T) {
			s, _ := newStore(t, Options{})
			rng := rand.New(rand.NewPCG(3, 4))
			const n = 42 // readings: 10 min of history, then two rises
			for part := range int32(12) {
				end, committed := 1e6, 1e6
				for i := range n {
					ago := time.Duration(n-1-i) * 15 * time.Second
					end += 7.5
					lag := 3 + float64(rng.IntN(4)) // jitter 3..6
					if i >= n-2 {
						lag += tc.trend * float64(i-(n-3)) // +4, +8
					}
					committed = end - lag
					x := kafka(part, ago, end, committed)
					x.Key = kafkaKey(part)
					require.Zero(t, s.Add([]Sample{x}))
				}
			}
			st := only(t, s.Evaluate(time.Minute))
			require.Equal(t, tc.want, st.State, st.Reason)
			if tc.want == StateWarning {
				require.Contains(t, st.Reason, "the group's lag grew from")
				require.Contains(t, st.Reason, "over its 12 partitions")
			}
		})
	}
}
