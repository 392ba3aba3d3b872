package embedded

import (
	"bufio"
	"bytes"
	"context"
	"fmt"
	"math/rand/v2"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	bolt "go.etcd.io/bbolt"

	"github.com/seed-a49a8342/cartograph/graph"
	"github.com/seed-a49a8342/cartograph/graph/finding"
	"github.com/seed-a49a8342/cartograph/graph/lag"
)

// Environment of the writer child process.
const (
	envHelperDir   = "CARTOGRAPH_EMBEDDED_HELPER_DIR"
	envHelperFirst = "CARTOGRAPH_EMBEDDED_HELPER_FIRST"
)

const (
	crashEdgesPerBatch = 200
	crashLagPerBatch   = 10
)

// crashBatch is batch i of the writer: its rows all carry i.
func crashBatch(i int) ([]graph.EdgeBucket, []finding.Finding, []lag.Sample) {
	at := t0.Add(time.Duration(i) * 5 * time.Second)
	edges := make([]graph.EdgeBucket, crashEdgesPerBatch)
	for k := range edges {
		edges[k] = edge(at, fmt.Sprintf("svc-%d", k), "db", uint64(i))
	}
	samples := make([]lag.Sample, crashLagPerBatch)
	for k := range samples {
		samples[k] = sample(at, fmt.Sprintf("g-%d", k), float64(i))
	}
	f := newFinding(fmt.Sprintf("f-%d", i%7), finding.StateFiring, at, nil, at)
	f.Evidence = map[string]any{"batch": float64(i)}
	return edges, []finding.Finding{f}, samples
}

// TestHelperWriter is not a test: run by TestCrashSafety as a child
// process, it commits batches in a loop and prints "committed N" after each
// Commit returns, until it is killed.
func TestHelperWriter(t *testing.T) {
	dir := os.Getenv(envHelperDir)
	if dir == "" {
		t.Skip("helper process for TestCrashSafety")
	}
	first, err := strconv.Atoi(os.Getenv(envHelperFirst))
	if err != nil {
		fmt.Fprintln(os.Stderr, "bad", envHelperFirst, err)
		os.Exit(2)
	}
	s, err := Open(Options{Dir: dir, RetentionInterval: -1, Now: func() time.Time { return t0 }})
	if err != nil {
		fmt.Fprintln(os.Stderr, "open:", err)
		os.Exit(2)
	}
	deadline := time.Now().Add(time.Minute) // never outlive a lost parent for long
	for i := first; time.Now().Before(deadline); i++ {
		edges, findings, samples := crashBatch(i)
		a := s.Appender()
		if err := a.AppendEdges(edges); err != nil {
			fmt.Fprintln(os.Stderr, "append:", err)
			os.Exit(2)
		}
		_ = a.AppendFindings(findings)
		_ = a.AppendLag(samples)
		if err := a.Commit(context.Background()); err != nil {
			fmt.Fprintln(os.Stderr, "commit:", err)
			os.Exit(2)
		}
		fmt.Printf("committed %d\n", i) // os.Stdout is unbuffered
	}
	os.Exit(3)
}

// TestCrashSafety SIGKILLs a writer in the middle of its commits, several
// times, and checks that the file opens, is consistent, and holds every
// batch the writer reported committed, and no part of any other batch.
// (SIGKILL loses the process, not the page cache: it shows that a crash at
// any instruction leaves a consistent file, while power loss is covered by
// bbolt's fsync on commit, which this test cannot cut.)
func TestCrashSafety(t *testing.T) {
	if testing.Short() {
		t.Skip("spawns writer processes")
	}
	dir := t.TempDir()
	committed := map[int]bool{}
	for round := range 4 {
		first := round * 1_000_000
		reported := runAndKill(t, dir, first, 10+round*7)
		require.NotEmpty(t, reported, "round %d: the writer committed nothing", round)
		for _, i := range reported {
			committed[i] = true
		}
		t.Logf("round %d: killed after %d reported commits", round, len(reported))
	}

	s := openStore(t, Options{Dir: dir})
	var problems []error
	require.NoError(t, s.db.View(func(tx *bolt.Tx) error {
		for err := range tx.Check() {
			problems = append(problems, err)
		}
		return nil
	}))
	require.Empty(t, problems, "bbolt consistency check")

	edgesPer, lagPer := map[int]int{}, map[int]int{}
	for _, e := range allEdges(t, s) {
		edgesPer[int(e.Requests)]++
	}
	for _, l := range allLag(t, s) {
		lagPer[int(l.Lag)]++
	}
	for i := range committed {
		require.Equal(t, crashEdgesPerBatch, edgesPer[i], "edges of reported batch %d", i)
		require.Equal(t, crashLagPerBatch, lagPer[i], "lag of reported batch %d", i)
	}
	// A batch that was in flight when the writer died is there whole or not
	// at all.
	extra := 0
	for i, n := range edgesPer {
		require.Equal(t, crashEdgesPerBatch, n, "batch %d is partial", i)
		require.Equal(t, crashLagPerBatch, lagPer[i], "batch %d is partial", i)
		if !committed[i] {
			extra++
		}
	}
	require.LessOrEqual(t, extra, 4, "at most the batch in flight per round is there unreported")
	fs, err := s.Findings(context.Background(), time.Time{}, t0.Add(1000*24*time.Hour))
	require.NoError(t, err)
	require.Len(t, fs, 7)
	// The row counts kept in meta survived with the rows.
	u, err := s.usage()
	require.NoError(t, err)
	require.Equal(t, uint64(len(edgesPer)*crashEdgesPerBatch), u.rows[kindEdge])
	require.Equal(t, uint64(len(lagPer)*crashLagPerBatch), u.rows[kindLag])
	t.Logf("%d batches reported committed, %d found, %d unreported", len(committed), len(edgesPer), extra)
}

// runAndKill runs the writer from batch first, SIGKILLs it once it has
// reported at least after commits (at a moment that varies with the
// scheduling), and returns the batches it reported.
func runAndKill(t *testing.T, dir string, first, after int) []int {
	t.Helper()
	cmd := exec.Command(os.Args[0], "-test.run=^TestHelperWriter$", "-test.count=1")
	cmd.Env = append(os.Environ(), envHelperDir+"="+dir, envHelperFirst+"="+strconv.Itoa(first))
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.StdoutPipe()
	require.NoError(t, err)
	require.NoError(t, cmd.Start())
	killed := false
	t.Cleanup(func() {
		if !killed {
			_ = cmd.Process.Kill()
			_ = cmd.Wait()
		}
	})

	var reported []int
	sc := bufio.NewScanner(out)
	for sc.Scan() {
		n, ok := strings.CutPrefix(sc.Text(), "committed ")
		if !ok {
			continue
		}
		i, err := strconv.Atoi(n)
		require.NoError(t, err)
		reported = append(reported, i)
		if len(reported) == after {
			// Kill while the next commits are being written, at a point
			// that varies.
			time.Sleep(time.Duration(rand.IntN(3000)) * time.Microsecond)
			require.NoError(t, cmd.Process.Kill())
			killed = true
		}
	}
	// Lines written before the kill are still read above: the pipe keeps
	// them after the process is gone.
	err = cmd.Wait()
	require.True(t, killed, "writer exited by itself: %v\n%s", err, stderr.String())
	return reported
}
