package graph_test

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	"go.opentelemetry.io/collector/pdata/ptrace"

	"github.com/seed-a49a8342/cartograph/graph"
	"github.com/seed-a49a8342/cartograph/ingest"
	"github.com/seed-a49a8342/cartograph/ingest/semconv"
)

// goldenSeeds returns the protobuf encoding of every request of every golden
// case, named <case>-<request index>. A protobuf TracesData and an OTLP
// ExportTraceServiceRequest share their encoding.
func goldenSeeds(t testing.TB) (names []string, seeds [][]byte) {
	t.Helper()
	var m ptrace.ProtoMarshaler
	for _, name := range goldenCases(t) {
		for i, td := range readRequests(t, name) {
			b, err := m.MarshalTraces(td)
			require.NoError(t, err)
			names = append(names, fmt.Sprintf("%s-%d", name, i))
			seeds = append(seeds, b)
		}
	}
	return names, seeds
}

// FuzzPipeline feeds arbitrary OTLP protobuf through the semconv pipeline
// into a small graph, twice (so that every span id is seen again), lets the
// half-edges expire and takes a snapshot. Nothing may panic, the pipeline
// may only fail with a partial success, and the snapshot must hold its
// invariants and encode as JSON.
func FuzzPipeline(f *testing.F) {
	_, seeds := goldenSeeds(f)
	for _, b := range seeds {
		f.Add(b)
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		var u ptrace.ProtoUnmarshaler
		td, err := u.UnmarshalTraces(data)
		if err != nil {
			return
		}
		clk := &testClock{t: goldenStart}
		g, err := graph.New(graph.Options{
			PairTTL:    goldenPairTTL,
			MaxPending: 1000,
			MaxNodes:   100,
			MaxEdges:   100,
			Now:        clk.now,
		})
		require.NoError(t, err)
		p, err := semconv.NewPipeline(semconv.Options{Sink: g})
		require.NoError(t, err)
		for range 2 {
			err := p.ConsumeTraces(context.Background(), td)
			var pe *ingest.PartialError
			if err != nil && !errors.As(err, &pe) {
				t.Fatalf("ConsumeTraces: %v, want nil or a partial success", err)
			}
			clk.advance(time.Second)
		}
		clk.advance(goldenPairTTL)
		g.Expire()
		snap, err := g.Snapshot(0)
		require.NoError(t, err)
		if err := checkSnapshot(snap); err != nil {
			t.Fatal(err)
		}
		if _, err := json.Marshal(snap); err != nil {
			t.Fatalf("json.Marshal(snapshot): %v", err)
		}
	})
}

// corpusDir holds seed files for FuzzPipeline; go test runs them as
// sub-tests of the fuzz target.
var corpusDir = filepath.Join("testdata", "fuzz", "FuzzPipeline")

// corpusCases are the golden cases whose requests are also kept as seed
// files, so that the corpus on disk stands alone.
var corpusCases = []string{"batch-links", "legacy-names", "split-shuffled"}

// TestFuzzCorpus checks that the seed files are in "go test fuzz v1"
// format and decode as OTLP traces; with -update it rewrites them from the
// golden inputs.
func TestFuzzCorpus(t *testing.T) {
	if *update {
		names, seeds := goldenSeeds(t)
		require.NoError(t, os.MkdirAll(corpusDir, 0o755))
		keep := map[string]bool{}
		for _, c := range corpusCases {
			keep[c] = true
		}
		for i, name := range names {
			if !keep[name[:strings.LastIndexByte(name, '-')]] {
				continue
			}
			body := fmt.Sprintf("go test fuzz v1\n[]byte(%q)\n", seeds[i])
			require.NoError(t, os.WriteFile(filepath.Join(corpusDir, "golden-"+name), []byte(body), 0o644))
		}
	}
	files, err := filepath.Glob(filepath.Join(corpusDir, "*"))
	require.NoError(t, err)
	require.NotEmpty(t, files, "run go test ./graph/ -run TestFuzzCorpus -update")
	for _, path := range files {
		b, err := os.ReadFile(path)
		require.NoError(t, err)
		data, err := parseCorpusFile(b)
		require.NoError(t, err, path)
		var u ptrace.ProtoUnmarshaler
		td, err := u.UnmarshalTraces(data)
		require.NoError(t, err, path)
		require.Positive(t, td.SpanCount(), path)
	}
}

// parseCorpusFile returns the single []byte value of a "go test fuzz v1"
// file.
func parseCorpusFile(b []byte) ([]byte, error) {
	header, rest, ok := bytes.Cut(b, []byte("\n"))
	if !ok || string(header) != "go test fuzz v1" {
		return nil, errors.New(`missing "go test fuzz v1" header`)
	}
	v := string(bytes.TrimSpace(rest))
	if len(v) < len("[]byte()") || v[:len("[]byte(")] != "[]byte(" || v[len(v)-1] != ')' {
		return nil, errors.New("want a single []byte(...) value")
	}
	s, err := strconv.Unquote(v[len("[]byte(") : len(v)-1])
	if err != nil {
		return nil, fmt.Errorf("unquoting the value: %w", err)
	}
	return []byte(s), nil
}
