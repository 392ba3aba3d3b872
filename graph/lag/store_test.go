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

// judgeQuery is what detect.LagJudge asks for at a one-minute window and
// the default stale-after.
var judgeQuery = Query{Window: time.Minute, StaleAfter: 2 * time.Minute, MinReadings: 4, MinSumReadings: 3}

// summarise summarises s as detect.LagJudge asks at window.
func summarise(s *Store, window time.Duration) []Summary {
	q := judgeQuery
	q.Window = window
	return s.Summarise(q)
}

func only(t *testing.T, st []Summary) Summary {
	t.Helper()
	require.Len(t, st, 1)
	return st[0]
}

func requireNear(t *testing.T, want float64, got *float64, what string) {
	t.Helper()
	require.NotNil(t, got, what)
	require.InDelta(t, want, *got, 1e-9, what)
}

func TestOutOfOrderAdds(t *testing.T) {
	in := every(12, func(i int, ago time.Duration) Sample {
		return kafka(0, ago, 1000+100*float64(i), 900+80*float64(i))
	})
	ordered, _ := newStore(t, Options{})
	require.Zero(t, ordered.Add(in))
	want := summarise(ordered, time.Minute)

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
	require.Equal(t, want, summarise(s, time.Minute))

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
	require.Equal(t, 2, len(only(t, summarise(s, time.Minute)).Partitions))

	// Past retention: not summarised even before Forget, then forgotten.
	clk.Set(t0.Add(16 * time.Minute))
	require.Empty(t, summarise(s, time.Minute))
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
	require.Equal(t, 1, len(only(t, summarise(s, time.Minute)).Partitions))

	n, err := testutil.GatherAndCount(reg, "cartograph_lag_samples_total", "cartograph_lag_keys", "cartograph_lag_samples_evicted_total")
	require.NoError(t, err)
	require.Equal(t, 5, n)
}

func TestAddSweepsAtKeyLimit(t *testing.T) {
	// Periodic sweeps every minute; the key limit forces one sooner.
	s, clk := newStore(t, Options{MaxKeys: 1})
	require.Zero(t, s.Add([]Sample{kafka(0, 15*time.Minute-5*time.Second, 1, 1)}))
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
	require.Equal(t, []string{"kafka:poller-2", "otlp"}, only(t, summarise(s, time.Minute)).Sources)
	clk.Set(t0.Add(6 * time.Minute)) // a is past retention
	require.Equal(t, []string{"kafka:poller-2"}, only(t, summarise(s, time.Minute)).Sources)

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

func TestOptions(t *testing.T) {
	tests := []struct {
		name string
		o    Options
		ok   bool
	}{
		{"defaults", Options{}, true},
		{"negative retention", Options{Retention: -time.Minute}, false},
		{"negative max ahead", Options{MaxAhead: -time.Minute}, false},
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

func TestConcurrentAddSummarise(t *testing.T) {
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
				for _, st := range summarise(s, time.Minute) {
					if len(st.Partitions) == 0 || st.UpdatedAt.IsZero() {
						t.Errorf("incomplete summary %+v", st)
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
	b.Run("summarise", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			if st := summarise(s, time.Minute); len(st) != 1000 {
				b.Fatalf("%d statuses", len(st))
			}
		}
	})
}
