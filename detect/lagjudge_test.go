package detect

import (
	"errors"
	"fmt"
	"math/rand/v2"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/seed-a49a8342/cartograph/graph/lag"
)

// judgeT0 is "now" in the verdict's tests: readings are placed relative to
// it.
var judgeT0 = time.Date(2026, 7, 1, 12, 0, 0, 0, time.UTC)

// kafkaReading is a Kafka-like reading ago before judgeT0: offsets known,
// lag left for the store to derive, one consumer.
func kafkaReading(part int32, ago time.Duration, end, committed float64) lag.Sample {
	return lag.Sample{
		Time: judgeT0.Add(-ago), Key: lag.Key{System: "kafka", Destination: "orders", Group: "billing", Partition: part},
		Lag: lag.Unknown, End: end, Committed: committed, Consumers: 1,
		Produced: lag.Unknown, Consumed: lag.Unknown, Source: "kafka:poller",
	}
}

// readingsEvery returns n readings 10s apart ending at judgeT0, reading i
// made by f.
func readingsEvery(n int, f func(i int, ago time.Duration) lag.Sample) []lag.Sample {
	out := make([]lag.Sample, n)
	for i := range n {
		out[i] = f(i, time.Duration(n-1-i)*10*time.Second)
	}
	return out
}

// judgeAt stores samples and returns the one group's status over window at
// judgeT0, as the collector's LagJudge gives it.
func judgeAt(t *testing.T, o LagJudgeOptions, window time.Duration, samples []lag.Sample) lag.Status {
	t.Helper()
	store, err := lag.New(lag.Options{Now: func() time.Time { return judgeT0 }})
	require.NoError(t, err)
	require.Zero(t, store.Add(samples))
	j, err := NewLagJudge(store, o)
	require.NoError(t, err)
	st := j.Evaluate(window)
	require.Len(t, st, 1)
	return st[0]
}

// TestJudgeLagRules: the verdict, state and reason, on the readings of
// graph/lag's TestSummaryFacts.
func TestJudgeLagRules(t *testing.T) {
	tests := []struct {
		name    string
		window  time.Duration
		samples []lag.Sample
		state   lag.State
		reason  string
	}{{
		name: "growing lag is a warning",
		samples: readingsEvery(7, func(i int, ago time.Duration) lag.Sample {
			return kafkaReading(0, ago, 1000+100*float64(i), 900+50*float64(i)) // lag 100 .. 400
		}),
		state: lag.StateWarning, reason: "falling behind: lag grew from 100 to 400 messages in 1m0s",
	}, {
		name: "behind but catching up is ok with a drain time",
		samples: readingsEvery(7, func(i int, ago time.Duration) lag.Sample {
			return kafkaReading(0, ago, 10000+100*float64(i), 9000+200*float64(i))
		}),
		state: lag.StateOK, reason: "behind by 400 messages but catching up, drained in about 40s at the current rates",
	}, {
		name: "position stuck with lag is stalled",
		samples: readingsEvery(7, func(i int, ago time.Duration) lag.Sample {
			return kafkaReading(0, ago, 1000+100*float64(i), 500)
		}),
		state: lag.StateStalled, reason: "position stuck at 500 while lag is 1100 messages",
	}, {
		name: "stuck and growing over less than half the window is not judged yet",
		samples: readingsEvery(3, func(i int, ago time.Duration) lag.Sample {
			return kafkaReading(0, ago, 1000+100*float64(i), 500) // 20s of a 1m window
		}),
		state: lag.StateOK, reason: "behind by 700 messages, not growing steadily",
	}, {
		name: "no consumers with lag is stopped",
		samples: readingsEvery(7, func(i int, ago time.Duration) lag.Sample {
			s := kafkaReading(0, ago, 1000, 900+10*float64(i))
			if i >= 3 { // the last 30 s
				s.Consumers = 0
			}
			return s
		}),
		state: lag.StateStopped, reason: "no consumers while lag is 40 messages",
	}, {
		name: "no consumers at one reading, a rebalance, is not stopped",
		samples: readingsEvery(7, func(i int, ago time.Duration) lag.Sample {
			s := kafkaReading(0, ago, 1000+100*float64(i), 900+100*float64(i))
			if i >= 5 {
				s.Committed = 1400 // paused since the reading 20 s ago
			}
			if i == 6 {
				s.Consumers = 0
			}
			return s
		}),
		state: lag.StateOK, reason: "behind by 200 messages, not growing steadily",
	}, {
		name: "recently caught up is ok even if now stuck without consumers",
		samples: readingsEvery(7, func(i int, ago time.Duration) lag.Sample {
			s := kafkaReading(0, ago, 1000+100*float64(max(0, i-4)), 1000) // lag 0 until 20s ago, then stuck and growing
			s.Consumers = 0
			return s
		}),
		state: lag.StateOK, reason: "caught up at 2026-07-01T11:59:40Z, 200 messages behind now",
	}, {
		name:    "idle topic is ok",
		samples: readingsEvery(7, func(i int, ago time.Duration) lag.Sample { return kafkaReading(0, ago, 500, 500) }),
		state:   lag.StateOK, reason: "idle: no lag and nothing produced",
	}, {
		name: "lag that falls and rises is ok",
		samples: readingsEvery(5, func(i int, ago time.Duration) lag.Sample {
			return kafkaReading(0, ago, 1000+100*float64(i), 900+[]float64{0, 150, 150, 300, 350}[i])
		}),
		state: lag.StateOK, reason: "behind by 150 messages, not growing steadily",
	}, {
		name: "poller stopped is stale with the last numbers kept",
		samples: readingsEvery(7, func(i int, ago time.Duration) lag.Sample {
			return kafkaReading(0, ago+5*time.Minute, 1000+100*float64(i), 900+50*float64(i))
		}),
		state: lag.StateStale, reason: "no reading since 2026-07-01T11:55:00Z (5m0s ago), when the lag was 400 messages",
	}, {
		name:   "readings older than stale-after in a long window are stale",
		window: 5 * time.Minute,
		samples: readingsEvery(7, func(i int, ago time.Duration) lag.Sample {
			return kafkaReading(0, ago+3*time.Minute, 1000, 1000)
		}),
		state: lag.StateStale, reason: "no reading since 2026-07-01T11:57:00Z (3m0s ago), when the lag was 0 messages",
	}, {
		name: "one stalled partition of two stalls the group",
		samples: append(
			readingsEvery(7, func(i int, ago time.Duration) lag.Sample {
				return kafkaReading(0, ago, 1000+100*float64(i), 1000+100*float64(i)-20)
			}),
			readingsEvery(7, func(i int, ago time.Duration) lag.Sample { return kafkaReading(1, ago, 2000+100*float64(i), 1700) })...),
		state: lag.StateStalled, reason: "position stuck at 1700 while lag is 900 messages on partition 1",
	}, {
		name: "a stale partition is left out of the state but named",
		samples: append(
			readingsEvery(7, func(i int, ago time.Duration) lag.Sample {
				return kafkaReading(0, ago, 1000+100*float64(i), 1000+100*float64(i))
			}),
			kafkaReading(1, 10*time.Minute, 5000, 4000)),
		state: lag.StateOK, reason: "caught up at 2026-07-01T12:00:00Z, 1000 messages behind now; partition 1 has had no reading since 2026-07-01T11:50:00Z",
	}, {
		name: "every partition falling behind: one partition's numbers, not two partitions' summed",
		samples: append(
			readingsEvery(7, func(i int, ago time.Duration) lag.Sample {
				return kafkaReading(0, ago, 1000+100*float64(i), 900+50*float64(i))
			}),
			readingsEvery(7, func(i int, ago time.Duration) lag.Sample {
				return kafkaReading(1, ago, 1000+100*float64(i), 960+50*float64(i))
			})...),
		state: lag.StateWarning, reason: "falling behind: lag grew from 100 to 400 messages in 1m0s on partition 0 (and on 1 other partition)",
	}, {
		name: "all partitions stale",
		samples: []lag.Sample{
			kafkaReading(0, 4*time.Minute, 1000, 990), kafkaReading(1, 3*time.Minute, 1000, 980), kafkaReading(2, 5*time.Minute, 1000, 1000),
		},
		state: lag.StateStale, reason: "no reading since 2026-07-01T11:57:00Z (3m0s ago), when the lag was 30 messages",
	}, {
		name: "some partitions stale",
		samples: []lag.Sample{
			kafkaReading(0, 4*time.Minute, 1000, 990), kafkaReading(1, 0, 1000, 980), kafkaReading(2, 5*time.Minute, 1000, 1000),
		},
		state: lag.StateOK, reason: "behind by 30 messages, not growing steadily; 2 of 3 partitions have had no reading for 4m0s or more",
	}, {
		name: "queue whose consumed count does not move is stalled",
		samples: readingsEvery(7, func(i int, ago time.Duration) lag.Sample {
			return lag.Sample{
				Time: judgeT0.Add(-ago), Key: lag.Key{System: "rabbitmq", Destination: "emails", Partition: -1},
				Lag: 50 + 10*float64(i), Committed: lag.Unknown, End: lag.Unknown, Consumers: 1,
				Produced: 1000 + 10*float64(i), Consumed: 950,
			}
		}),
		state: lag.StateStalled, reason: "consumed count stuck at 950 while lag is 110 messages",
	}, {
		name: "a queue keeping pace",
		samples: readingsEvery(7, func(i int, ago time.Duration) lag.Sample {
			return lag.Sample{
				Time: judgeT0.Add(-ago), Key: lag.Key{System: "rabbitmq", Destination: "emails", Partition: -1},
				Lag: 24, Committed: lag.Unknown, End: lag.Unknown, Consumers: 1,
				Produced: 1000 + 100*float64(i), Consumed: 976 + 100*float64(i),
			}
		}),
		state: lag.StateOK, reason: "keeping pace, 24 messages behind",
	}}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			w := tt.window
			if w == 0 {
				w = time.Minute
			}
			st := judgeAt(t, LagJudgeOptions{}, w, tt.samples)
			require.Equal(t, tt.state, st.State, st.Reason)
			require.Equal(t, tt.reason, st.Reason)
			// The pure function draws the same verdict from the summary.
			state, reason := JudgeLag(&st.Summary)
			require.Equal(t, tt.state, state)
			require.Equal(t, tt.reason, reason)
		})
	}
}

// TestJudgeLagGroupSum: twelve partitions with ten minutes of history
// whose lags jitter by a few messages (each reading 15 s apart) start
// falling behind by about 4 messages a poll each: no partition has risen
// three times clear of its own jitter after two polls, the group's summed
// lag (about 45 a poll) has, and the group is falling behind then. The
// same partitions without the trend stay OK.
func TestJudgeLagGroupSum(t *testing.T) {
	for _, tc := range []struct {
		name  string
		trend float64
		want  lag.State
	}{{"falling behind", 4, lag.StateWarning}, {"jitter only", 0, lag.StateOK}} {
		t.Run(tc.name, func(t *testing.T) {
			rng := rand.New(rand.NewPCG(3, 4))
			const n = 42 // readings: 10 min of history, then two rises
			var samples []lag.Sample
			for part := range int32(12) {
				end := 1e6
				for i := range n {
					ago := time.Duration(n-1-i) * 15 * time.Second
					end += 7.5
					l := 3 + float64(rng.IntN(4)) // jitter 3..6
					if i >= n-2 {
						l += tc.trend * float64(i-(n-3)) // +4, +8
					}
					samples = append(samples, kafkaReading(part, ago, end, end-l))
				}
			}
			st := judgeAt(t, LagJudgeOptions{}, time.Minute, samples)
			require.Equal(t, tc.want, st.State, st.Reason)
			if tc.want == lag.StateWarning {
				require.Contains(t, st.Reason, "the group's lag grew from")
				require.Contains(t, st.Reason, "over its 12 partitions")
				// Without the summed trend, no partition alone is behind.
				alone := st.Summary
				alone.Sum = nil
				state, _ := JudgeLag(&alone)
				require.Equal(t, lag.StateOK, state)
			}
		})
	}
}

// TestJudgeLagUnknownLag is issue #15 8 (part): readings without a lag or
// offsets say nothing of the lag, and the verdict says so.
func TestJudgeLagUnknownLag(t *testing.T) {
	st := judgeAt(t, LagJudgeOptions{}, time.Minute, []lag.Sample{{Time: judgeT0, Key: lag.Key{System: "kafka", Destination: "orders", Group: "billing", Partition: 0},
		Lag: lag.Unknown, Committed: lag.Unknown, End: lag.Unknown, Consumers: 2, Produced: lag.Unknown, Consumed: lag.Unknown}})
	require.Nil(t, st.Messages)
	require.Equal(t, lag.StateOK, st.State)
	require.Equal(t, "no lag reported", st.Reason)
}

// TestLagJudgeStaleAfter: the judge's stale-after decides which readings
// are current: two minutes of a stuck position, the newest reading 90 s
// old, in a three-minute window.
func TestLagJudgeStaleAfter(t *testing.T) {
	samples := readingsEvery(13, func(i int, ago time.Duration) lag.Sample {
		return kafkaReading(0, ago+90*time.Second, 1000+100*float64(i), 500)
	})
	st := judgeAt(t, LagJudgeOptions{}, 3*time.Minute, samples)
	require.Equal(t, lag.StateStalled, st.State, "current under the default 2m")
	require.NotNil(t, st.ProduceRate)
	st = judgeAt(t, LagJudgeOptions{StaleAfter: time.Minute}, 3*time.Minute, samples)
	require.Equal(t, lag.StateStale, st.State)
	require.Equal(t, "no reading since 2026-07-01T11:58:30Z (1m30s ago), when the lag was 1700 messages", st.Reason)
	require.Nil(t, st.ProduceRate, "a stale partition has no current rates")
}

func TestLagJudgeOptions(t *testing.T) {
	store, err := lag.New(lag.Options{})
	require.NoError(t, err)
	_, err = NewLagJudge(store, LagJudgeOptions{StaleAfter: -time.Second})
	require.True(t, errors.Is(err, ErrInvalidLagJudge), "%v", err)
	j, err := NewLagJudge(store, LagJudgeOptions{})
	require.NoError(t, err)
	require.Equal(t, lag.Query{Window: time.Minute, StaleAfter: DefaultLagStaleAfter, MinReadings: lagMinRises + 1, MinSumReadings: lagMinGroupRises + 1}, j.Query(time.Minute))
}

// TestJudgeTrend: the rules on a trend's facts, at their edges, for a
// one-minute window.
func TestJudgeTrend(t *testing.T) {
	// rising: three rises over 40 s from 100 to 400, steps of 100, 300
	// produced meanwhile... and a long, quiet history.
	rising := lag.Trend{Run: 5, Lag: 400, Position: 900, Stuck: lag.Span{Readings: 1},
		Rise: lag.Rise{Rises: 3, Length: 40 * time.Second, From: 100, To: 400, MaxStep: 100, Produced: 600, Noise: 5, Baseline: 10 * time.Minute, BaselineLag: 90}}
	mod := func(f func(tr *lag.Trend)) lag.Trend {
		tr := rising
		f(&tr)
		return tr
	}
	tests := []struct {
		name  string
		tr    lag.Trend
		rises int
		want  lag.State
	}{
		{"caught up at the newest reading", lag.Trend{Lag: lag.Unknown}, lagMinRises, lag.StateOK},
		{"lag unknown at the newest reading", mod(func(tr *lag.Trend) { tr.Lag = lag.Unknown }), lagMinRises, lag.StateOK},
		{"falling behind", rising, lagMinRises, lag.StateWarning},
		{"idle for three readings over half the window", mod(func(tr *lag.Trend) { tr.Idle = lag.Span{Readings: 3, Length: 30 * time.Second} }), lagMinRises, lag.StateStopped},
		{"idle for two readings", mod(func(tr *lag.Trend) { tr.Idle = lag.Span{Readings: 2, Length: 45 * time.Second} }), lagMinRises, lag.StateWarning},
		{"idle under half the window", mod(func(tr *lag.Trend) { tr.Idle = lag.Span{Readings: 5, Length: 29 * time.Second} }), lagMinRises, lag.StateWarning},
		{"stuck over half the window", mod(func(tr *lag.Trend) { tr.Stuck = lag.Span{Readings: 3, Length: 30 * time.Second} }), lagMinRises, lag.StateStalled},
		{"stopped before stalled", mod(func(tr *lag.Trend) {
			tr.Stuck = lag.Span{Readings: 3, Length: 30 * time.Second}
			tr.Idle = tr.Stuck
		}), lagMinRises, lag.StateStopped},
		{"stuck, position unknown", mod(func(tr *lag.Trend) {
			tr.Position = lag.Unknown
			tr.Stuck = lag.Span{Readings: 3, Length: 30 * time.Second}
		}), lagMinRises, lag.StateWarning},
		{"two rises: a partition needs three", mod(func(tr *lag.Trend) { tr.Rise.Rises = 2 }), lagMinRises, lag.StateOK},
		{"two rises: the group's sum needs two", mod(func(tr *lag.Trend) { tr.Rise.Rises = 2 }), lagMinGroupRises, lag.StateWarning},
		{"rises over under half the window", mod(func(tr *lag.Trend) { tr.Rise.Length = 29 * time.Second }), lagMinRises, lag.StateOK},
		{"growth under 10 messages", mod(func(tr *lag.Trend) { tr.Rise.From, tr.Rise.To, tr.Rise.MaxStep, tr.Rise.Noise = 100, 109, 3, 0 }), lagMinRises, lag.StateOK},
		{"one jump, not steady growth", mod(func(tr *lag.Trend) { tr.Rise.MaxStep = 290 }), lagMinRises, lag.StateOK},
		{"growth within twice the noise", mod(func(tr *lag.Trend) { tr.Rise.Noise = 100 }), lagMinRises, lag.StateOK},
		{"growth just clear of twice the noise", mod(func(tr *lag.Trend) { tr.Rise.Noise = 99.9 }), lagMinRises, lag.StateWarning},
		{"young: the band reaches the oldest lag", mod(func(tr *lag.Trend) { tr.Rise.Baseline, tr.Rise.BaselineLag = time.Minute, 100 }), lagMinRises, lag.StateOK},
		{"young, from no lag", mod(func(tr *lag.Trend) { tr.Rise.Baseline, tr.Rise.BaselineLag = time.Minute, 10 }), lagMinRises, lag.StateWarning},
		{"consumed 90% of what was produced", mod(func(tr *lag.Trend) { tr.Rise.Produced = 3001 }), lagMinRises, lag.StateOK},
		{"young: must have consumed under 75%", mod(func(tr *lag.Trend) {
			tr.Rise.Baseline, tr.Rise.BaselineLag, tr.Rise.Produced = time.Minute, 10, 1201
		}), lagMinRises, lag.StateOK},
		{"produced unknown", mod(func(tr *lag.Trend) { tr.Rise.Produced = lag.Unknown }), lagMinRises, lag.StateWarning},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			require.Equal(t, tt.want, judgeTrend(&tt.tr, time.Minute, tt.rises))
		})
	}
}

// BenchmarkLagJudge: the statuses of 1,000 groups x 10 partitions x 20
// readings 10 s apart (graph/lag's BenchmarkStore readings), summarised
// and judged, as each snapshot asks for them.
func BenchmarkLagJudge(b *testing.B) {
	store, err := lag.New(lag.Options{Now: func() time.Time { return judgeT0 }})
	require.NoError(b, err)
	const groups, parts, rounds = 1000, 10, 20
	for r := range rounds {
		t := judgeT0.Add(-time.Duration(rounds-1-r) * 10 * time.Second)
		batch := make([]lag.Sample, 0, groups*parts)
		for g := range groups {
			for p := range parts {
				end := float64(1000 + 100*r + g)
				batch = append(batch, lag.Sample{
					Time: t, Key: lag.Key{System: "kafka", Destination: fmt.Sprintf("topic-%d", g%100), Group: fmt.Sprintf("group-%d", g), Partition: int32(p)},
					Lag: lag.Unknown, End: end, Committed: end - float64((g*p+r)%50), Consumers: 3,
					Produced: lag.Unknown, Consumed: lag.Unknown, Source: "kafka:poller",
				})
			}
		}
		require.Zero(b, store.Add(batch))
	}
	j, err := NewLagJudge(store, LagJudgeOptions{})
	require.NoError(b, err)
	b.ReportAllocs()
	for b.Loop() {
		if st := j.Evaluate(time.Minute); len(st) != groups {
			b.Fatalf("%d statuses", len(st))
		}
	}
}
