package lag

import (
	"math/rand/v2"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

func only1(t *testing.T, su Summary) Partition {
	t.Helper()
	require.Len(t, su.Partitions, 1)
	return su.Partitions[0]
}

// TestSummaryFacts: the numbers of a group's summary and the facts its
// verdict is drawn from (the verdicts on the same readings are detect's
// TestJudgeLagRules).
func TestSummaryFacts(t *testing.T) {
	tests := []struct {
		name    string
		window  time.Duration
		samples []Sample
		check   func(t *testing.T, su Summary)
	}{{
		name: "growing lag",
		samples: every(7, func(i int, ago time.Duration) Sample {
			return kafka(0, ago, 1000+100*float64(i), 900+50*float64(i)) // lag 100 .. 400
		}),
		check: func(t *testing.T, su Summary) {
			require.Equal(t, 400.0, *su.Messages)
			requireNear(t, 10, su.ProduceRate, "produce rate")
			requireNear(t, 5, su.ConsumeRate, "consume rate")
			require.Nil(t, su.DrainSeconds, "not draining")
			p := only1(t, su)
			require.False(t, p.Stale)
			require.Equal(t, t0, p.Newest)
			require.Equal(t, 400.0, p.Lag)
			require.Equal(t, Trend{
				Run: 7, Lag: 400, Position: 1200,
				Stuck: Span{Readings: 1},
				Rise:  Rise{Rises: 6, Length: time.Minute, From: 100, To: 400, MaxStep: 50, Produced: 600, BaselineLag: 100},
			}, p.Trend)
			require.Nil(t, su.Sum, "one partition")
		},
	}, {
		name: "behind but catching up, with a drain time",
		samples: every(7, func(i int, ago time.Duration) Sample {
			// 10/s produced, 20/s consumed: lag 1000 .. 400.
			return kafka(0, ago, 10000+100*float64(i), 9000+200*float64(i))
		}),
		check: func(t *testing.T, su Summary) {
			require.Equal(t, 400.0, *su.Messages)
			requireNear(t, 10, su.ProduceRate, "produce rate")
			requireNear(t, 20, su.ConsumeRate, "consume rate")
			requireNear(t, 40, su.DrainSeconds, "400 messages at a net 10/s")
			// Committed 10200 was the head 40s ago (End 10000 + 2*100).
			requireNear(t, 40, su.Seconds, "time lag")
			tr := only1(t, su).Trend
			require.Equal(t, 7, tr.Run)
			require.Equal(t, Rise{From: 400, To: 400, Produced: Unknown}, tr.Rise, "the lag fell at the newest reading")
		},
	}, {
		name: "position stuck with lag",
		samples: every(7, func(i int, ago time.Duration) Sample {
			return kafka(0, ago, 1000+100*float64(i), 500)
		}),
		check: func(t *testing.T, su Summary) {
			requireNear(t, 10, su.ProduceRate, "produce rate")
			requireNear(t, 0, su.ConsumeRate, "consume rate")
			require.Nil(t, su.DrainSeconds)
			tr := only1(t, su).Trend
			require.Equal(t, 500.0, tr.Position)
			require.False(t, tr.OnCounter)
			require.Equal(t, Span{Readings: 7, Length: time.Minute}, tr.Stuck)
			require.Equal(t, 1100.0, tr.Lag)
			require.Zero(t, tr.Rise.Rises, "a rise needs the position to move")
		},
	}, {
		name: "stuck over less than half the window",
		samples: every(3, func(i int, ago time.Duration) Sample {
			return kafka(0, ago, 1000+100*float64(i), 500) // 20s of a 1m window
		}),
		check: func(t *testing.T, su Summary) {
			require.Equal(t, Span{Readings: 3, Length: 20 * time.Second}, only1(t, su).Trend.Stuck)
		},
	}, {
		name: "no consumers with lag",
		samples: every(7, func(i int, ago time.Duration) Sample {
			s := kafka(0, ago, 1000, 900+10*float64(i))
			if i >= 3 { // the last 30 s
				s.Consumers = 0
			}
			return s
		}),
		check: func(t *testing.T, su Summary) {
			requireNear(t, 0, su.Consumers, "consumers")
			require.Equal(t, Span{Readings: 4, Length: 30 * time.Second}, only1(t, su).Trend.Idle)
		},
	}, {
		name: "no consumers at one reading, a rebalance",
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
		check: func(t *testing.T, su Summary) {
			tr := only1(t, su).Trend
			require.Equal(t, Span{Readings: 1}, tr.Idle)
			require.Equal(t, Span{Readings: 2, Length: 10 * time.Second}, tr.Stuck)
		},
	}, {
		name: "recently caught up, then stuck without consumers",
		samples: every(7, func(i int, ago time.Duration) Sample {
			s := kafka(0, ago, 1000+100*float64(max(0, i-4)), 1000) // lag 0 until 20s ago, then stuck and growing
			s.Consumers = 0
			return s
		}),
		check: func(t *testing.T, su Summary) {
			tr := only1(t, su).Trend
			require.Equal(t, t0.Add(-20*time.Second), tr.ZeroAt)
			require.Equal(t, 2, tr.Run, "the readings since")
			require.Equal(t, Span{Readings: 2, Length: 10 * time.Second}, tr.Idle)
			require.Equal(t, Span{Readings: 2, Length: 10 * time.Second}, tr.Stuck)
		},
	}, {
		name: "idle topic",
		samples: every(7, func(i int, ago time.Duration) Sample {
			return kafka(0, ago, 500, 500)
		}),
		check: func(t *testing.T, su Summary) {
			require.Equal(t, 0.0, *su.Messages)
			requireNear(t, 0, su.ProduceRate, "produce rate")
			requireNear(t, 0, su.DrainSeconds, "drain")
			requireNear(t, 0, su.Seconds, "time lag")
			tr := only1(t, su).Trend
			require.Equal(t, Trend{ZeroAt: t0, Lag: Unknown, Position: Unknown}, tr, "caught up at the newest reading: nothing more to tell")
		},
	}, {
		name: "lag that falls and rises",
		samples: every(5, func(i int, ago time.Duration) Sample {
			return kafka(0, ago, 1000+100*float64(i), 900+[]float64{0, 150, 150, 300, 350}[i]) // lag 100 50 150 100 150
		}),
		check: func(t *testing.T, su Summary) {
			require.Nil(t, su.DrainSeconds, "consume 8.75/s < produce 10/s")
			require.Equal(t, Rise{Rises: 1, Length: 10 * time.Second, From: 100, To: 150, MaxStep: 50, Produced: 100,
				Noise: 75, Baseline: 30 * time.Second, BaselineLag: 100}, only1(t, su).Trend.Rise,
				"steps -50 +100 -50 before the rise: a band of 75")
		},
	}, {
		name: "poller stopped: stale, the last numbers kept",
		samples: every(7, func(i int, ago time.Duration) Sample {
			return kafka(0, ago+5*time.Minute, 1000+100*float64(i), 900+50*float64(i))
		}),
		check: func(t *testing.T, su Summary) {
			require.Equal(t, 400.0, *su.Messages)
			require.Equal(t, t0.Add(-5*time.Minute), su.UpdatedAt)
			requireNear(t, 1, su.Consumers, "consumers")
			require.Nil(t, su.ProduceRate, "no reading in the window")
			require.Nil(t, su.ConsumeRate)
			require.Nil(t, su.DrainSeconds)
			// As of the last reading: committed 1200 was the head 40s before it.
			requireNear(t, 40, su.Seconds, "time lag")
			p := only1(t, su)
			require.True(t, p.Stale)
			require.Equal(t, Trend{}, p.Trend)
			require.Equal(t, 400.0, p.Lag)
		},
	}, {
		name:   "readings older than stale-after in a long window",
		window: 5 * time.Minute,
		samples: every(7, func(i int, ago time.Duration) Sample {
			return kafka(0, ago+3*time.Minute, 1000, 1000)
		}),
		check: func(t *testing.T, su Summary) {
			require.True(t, only1(t, su).Stale)
			require.Equal(t, 5*time.Minute, su.Window)
			requireNear(t, 0, su.DrainSeconds, "no lag at the last reading")
		},
	}, {
		name: "one stalled partition of two",
		samples: append(
			every(7, func(i int, ago time.Duration) Sample {
				return kafka(0, ago, 1000+100*float64(i), 1000+100*float64(i)-20)
			}),
			every(7, func(i int, ago time.Duration) Sample { return kafka(1, ago, 2000+100*float64(i), 1700) })...),
		check: func(t *testing.T, su Summary) {
			require.Len(t, su.Partitions, 2)
			require.Equal(t, 920.0, *su.Messages)
			requireNear(t, 20, su.ProduceRate, "sum over partitions")
			requireNear(t, 10, su.ConsumeRate, "sum over partitions")
			p1 := su.Partitions[1]
			require.Equal(t, int32(1), p1.Partition)
			require.Equal(t, Span{Readings: 7, Length: time.Minute}, p1.Trend.Stuck)
			require.Equal(t, 1700.0, p1.Trend.Position)
			require.NotNil(t, su.Sum, "two current partitions read at the same times")
			require.Equal(t, 7, su.Sum.Run)
			require.Equal(t, 920.0, su.Sum.Lag)
			require.Equal(t, 1580.0+1700, su.Sum.Position, "committed offsets summed")
			require.Equal(t, Span{}, su.Sum.Idle, "members are not summed: unknown")
		},
	}, {
		name: "a stale partition is left out of the rates and the sum, not of the lag",
		samples: append(
			every(7, func(i int, ago time.Duration) Sample { return kafka(0, ago, 1000+100*float64(i), 1000+100*float64(i)) }),
			kafka(1, 10*time.Minute, 5000, 4000)),
		check: func(t *testing.T, su Summary) {
			require.Equal(t, 1000.0, *su.Messages, "the stale partition's lag counts")
			requireNear(t, 10, su.ProduceRate, "the current partition's")
			require.Len(t, su.Partitions, 2)
			require.False(t, su.Partitions[0].Stale)
			require.True(t, su.Partitions[1].Stale)
			require.Equal(t, t0.Add(-10*time.Minute), su.Partitions[1].Newest)
			require.Equal(t, t0, su.Partitions[0].Trend.ZeroAt)
			require.Nil(t, su.Sum, "one current partition")
		},
	}, {
		name: "all partitions stale",
		samples: []Sample{
			kafka(0, 4*time.Minute, 1000, 990), kafka(1, 3*time.Minute, 1000, 980), kafka(2, 5*time.Minute, 1000, 1000),
		},
		check: func(t *testing.T, su Summary) {
			require.Equal(t, t0.Add(-3*time.Minute), su.UpdatedAt)
			require.Len(t, su.Partitions, 3)
			for _, p := range su.Partitions {
				require.True(t, p.Stale)
			}
			require.Equal(t, 30.0, *su.Messages)
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
		check: func(t *testing.T, su Summary) {
			requireNear(t, 550.0/60, su.ProduceRate, "produce rate")
			requireNear(t, 520.0/60, su.ConsumeRate, "consume rate")
			requireNear(t, 130/(550.0/60), su.Seconds, "age of the head of the backlog")
			require.Nil(t, su.DrainSeconds, "consumers slower than producers")
			require.Equal(t, []string{"rabbitmq:mgmt"}, su.Sources)
			p := only1(t, su)
			require.Equal(t, int32(-1), p.Partition)
			require.True(t, p.Trend.OnCounter)
			require.Equal(t, 220.0, p.Trend.Position)
		},
	}, {
		name: "queue whose consumed count does not move",
		samples: every(7, func(i int, ago time.Duration) Sample {
			return Sample{
				Time: t0.Add(-ago), Key: Key{System: "rabbitmq", Destination: "emails", Partition: -1},
				Lag: 50 + 10*float64(i), Committed: Unknown, End: Unknown, Consumers: 1,
				Produced: 1000 + 10*float64(i), Consumed: 950,
			}
		}),
		check: func(t *testing.T, su Summary) {
			require.Nil(t, su.Sources)
			tr := only1(t, su).Trend
			require.True(t, tr.OnCounter)
			require.Equal(t, 950.0, tr.Position)
			require.Equal(t, Span{Readings: 7, Length: time.Minute}, tr.Stuck)
		},
	}, {
		name: "a rise measured against the produced counter when offsets are unknown",
		samples: every(7, func(i int, ago time.Duration) Sample {
			return Sample{
				Time: t0.Add(-ago), Key: Key{System: "rabbitmq", Destination: "emails", Partition: -1},
				Lag: 50 + 10*float64(i), Committed: Unknown, End: Unknown, Consumers: 1,
				Produced: 1000 + 30*float64(i), Consumed: 950 + 20*float64(i),
			}
		}),
		check: func(t *testing.T, su Summary) {
			require.Equal(t, Rise{Rises: 6, Length: time.Minute, From: 50, To: 110, MaxStep: 10, Produced: 180, BaselineLag: 50}, only1(t, su).Trend.Rise)
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
			su := only(t, summarise(s, w))
			require.Equal(t, tt.samples[0].System, su.System)
			require.Equal(t, t0, su.At)
			tt.check(t, su)
		})
	}
}

// TestSummaryMinReadings: a source read once a minute leaves two readings
// in a one-minute window; the trend covers the newest MinReadings instead.
func TestSummaryMinReadings(t *testing.T) {
	s, _ := newStore(t, Options{})
	in := make([]Sample, 6)
	for i := range in {
		in[i] = kafka(0, time.Duration(5-i)*time.Minute, 1000+600*float64(i), 900+300*float64(i)) // lag 100, 400, ... 1600
	}
	require.Zero(t, s.Add(in))
	for _, tc := range []struct {
		min      int
		rises    int
		produced float64
	}{{0, 1, 600}, {1, 1, 600}, {4, 3, 1800}, {9, 5, 3000}} {
		q := judgeQuery
		q.MinReadings = tc.min
		tr := only1(t, only(t, s.Summarise(q))).Trend
		require.Equal(t, tc.rises, tr.Rise.Rises, "min %d", tc.min)
		require.Equal(t, tc.produced, tr.Rise.Produced, "min %d", tc.min)
	}
}

// TestSummaryQueryDefaults: a window of zero or longer than Retention is
// Retention; a stale-after of zero is Retention too.
func TestSummaryQueryDefaults(t *testing.T) {
	s, _ := newStore(t, Options{Retention: 10 * time.Minute})
	require.Zero(t, s.Add([]Sample{kafka(0, 5*time.Minute, 10, 5), kafka(0, 4*time.Minute, 20, 10)}))
	for _, w := range []time.Duration{0, -time.Second, time.Hour} {
		su := only(t, s.Summarise(Query{Window: w}))
		require.Equal(t, 10*time.Minute, su.Window)
		require.False(t, only1(t, su).Stale, "4 minutes old, within Retention")
		requireNear(t, 10.0/60, su.ProduceRate, "over both readings")
	}
	su := only(t, s.Summarise(Query{Window: 10 * time.Minute, StaleAfter: 3 * time.Minute}))
	require.True(t, only1(t, su).Stale)
	require.Nil(t, su.ProduceRate)
}

// TestSumTrend: the group's summed lag is taken at the times every current
// partition has a reading, over current partitions only, and given only
// with enough of them, recent enough.
func TestSumTrend(t *testing.T) {
	grow := func(part int32, ago time.Duration, i int) Sample {
		return kafka(part, ago, 1000+100*float64(i), 900+80*float64(i)) // lag 100 + 20 i
	}
	t.Run("summed at common times", func(t *testing.T) {
		s, _ := newStore(t, Options{})
		var in []Sample
		for part := range int32(3) {
			in = append(in, every(7, func(i int, ago time.Duration) Sample { return grow(part, ago, i) })...)
		}
		in = append(in, kafka(0, 5*time.Second, 2000, 1800)) // only partition 0 then: not summed
		require.Zero(t, s.Add(in))
		su := only(t, summarise(s, time.Minute))
		require.NotNil(t, su.Sum)
		require.Equal(t, 7, su.Sum.Run)
		require.Equal(t, 3*220.0, su.Sum.Lag)
		require.Equal(t, Rise{Rises: 6, Length: time.Minute, From: 300, To: 660, MaxStep: 60, Produced: 3 * 600, BaselineLag: 300}, su.Sum.Rise)
	})
	t.Run("the newest summed reading older than stale-after", func(t *testing.T) {
		s, _ := newStore(t, Options{})
		var in []Sample
		for part := range int32(2) {
			in = append(in, every(7, func(i int, ago time.Duration) Sample { return grow(part, ago+30*time.Second, i) })...)
			in = append(in, kafka(part, time.Duration(part)*time.Second, 2000, 1800)) // not at the same time
		}
		require.Zero(t, s.Add(in))
		q := judgeQuery
		require.NotNil(t, only(t, s.Summarise(q)).Sum)
		q.StaleAfter = 20 * time.Second
		require.Nil(t, only(t, s.Summarise(q)).Sum)
	})
	t.Run("too few common readings", func(t *testing.T) {
		s, _ := newStore(t, Options{})
		require.Zero(t, s.Add([]Sample{grow(0, 10*time.Second, 0), grow(1, 10*time.Second, 0), grow(0, 0, 1), grow(1, 0, 1)}))
		require.Nil(t, only(t, summarise(s, time.Minute)).Sum)
		q := judgeQuery
		q.MinSumReadings = 2
		require.Equal(t, 1, only(t, s.Summarise(q)).Sum.Rise.Rises)
	})
	t.Run("stale partitions left out", func(t *testing.T) {
		s, _ := newStore(t, Options{})
		var in []Sample
		for part := range int32(2) {
			in = append(in, every(7, func(i int, ago time.Duration) Sample { return grow(part, ago, i) })...)
		}
		in = append(in, kafka(2, 10*time.Minute, 5000, 100))
		require.Zero(t, s.Add(in))
		su := only(t, summarise(s, time.Minute))
		require.Equal(t, 2*220.0, su.Sum.Lag)
	})
	// TestGroupSumFallsBehind's readings (the verdict on them is detect's
	// TestJudgeLagGroupSum): twelve partitions jittering by a few
	// messages, then two rises of about 4 messages on each.
	t.Run("twelve jittering partitions", func(t *testing.T) {
		s, _ := newStore(t, Options{})
		rng := rand.New(rand.NewPCG(3, 4))
		const n = 42 // readings: 10 min of history, then two rises
		for part := range int32(12) {
			end := 1e6
			for i := range n {
				ago := time.Duration(n-1-i) * 15 * time.Second
				end += 7.5
				lag := 3 + float64(rng.IntN(4)) // jitter 3..6
				if i >= n-2 {
					lag += 4 * float64(i-(n-3)) // +4, +8
				}
				require.Zero(t, s.Add([]Sample{kafka(part, ago, end, end-lag)}))
			}
		}
		su := only(t, summarise(s, time.Minute))
		r := su.Sum.Rise
		require.GreaterOrEqual(t, r.Rises, 2)
		require.Equal(t, 30*time.Second, r.Length)
		require.Greater(t, r.To-r.From, 2*r.Noise, "the sum's growth clears its own noise")
		require.Equal(t, 41*15*time.Second-r.Length, r.Baseline, "from the oldest reading")
		for _, p := range su.Partitions {
			require.Less(t, p.Trend.Rise.To-p.Trend.Rise.From-p.Trend.Rise.MaxStep, 2*p.Trend.Rise.Noise+1e-9,
				"no partition's own growth, without its largest step, clears its noise")
		}
	})
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
			st := only(t, summarise(s, time.Minute))
			requireNear(t, tt.want, st.Seconds, "time lag")
		})
	}

	t.Run("unknown without offsets or a produce rate", func(t *testing.T) {
		s, _ := newStore(t, Options{})
		require.Zero(t, s.Add([]Sample{{Time: t0, Key: Key{System: "nats", Destination: "jobs", Group: "w", Partition: -1},
			Lag: 12, Committed: Unknown, End: Unknown, Consumers: Unknown, Produced: Unknown, Consumed: Unknown}}))
		st := only(t, summarise(s, time.Minute))
		require.Nil(t, st.Seconds)
		require.Nil(t, st.ProduceRate, "one reading")
		require.Nil(t, st.Consumers)
		require.Nil(t, st.DrainSeconds)
		require.Equal(t, 12.0, *st.Messages)
		tr := only1(t, st).Trend
		require.Equal(t, Unknown, tr.Position)
		require.Equal(t, Span{}, tr.Stuck)
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
	st := summarise(s, time.Minute)
	var got []GroupKey
	for _, x := range st {
		got = append(got, x.GroupKey)
	}
	require.Equal(t, []GroupKey{{"kafka", "a", "g"}, {"kafka", "a", "h"}, {"kafka", "b", "g"}, {"nats", "b", "g"}}, got)
	require.Equal(t, 9.0, *st[0].Messages)
	require.Len(t, st[0].Partitions, 2)
	require.Equal(t, t0, st[0].UpdatedAt)
}

func TestLagDerivedAndNegativesUnknown(t *testing.T) {
	s, _ := newStore(t, Options{})
	x := kafka(0, 0, 100, 40)
	x.Consumers = -3
	require.Zero(t, s.Add([]Sample{x}))
	st := only(t, summarise(s, time.Minute))
	require.Equal(t, 60.0, *st.Messages)
	require.Nil(t, st.Consumers)
}
