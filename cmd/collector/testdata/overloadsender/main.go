// Command overloadsender is the load of cmd/collector's TestE2EOverload, in
// a process of its own, so that the race detector the tests may run under
// does not slow the sender below the rate the test means to offer. It
// prints one JSON line of counts.
package main

import (
	"bytes"
	"encoding/json"
	"flag"
	"io"
	"net/http"
	"os"
	"sync"
	"sync/atomic"
	"time"

	"go.opentelemetry.io/collector/pdata/ptrace/ptraceotlp"

	"github.com/seed-a49a8342/cartograph/simulate/synth"
)

// loadSender posts pre-encoded OTLP/HTTP protobuf requests and counts the
// answers. It does not touch t, so any goroutine may use it.
type loadSender struct {
	url    string
	client *http.Client
	bodies [][]byte
	spans  int64 // spans per body
	next   atomic.Int64

	accepted, refused, failed atomic.Int64 // requests
}

func newLoadSender(url string, requests, tracesPerRequest int) *loadSender {
	s := &loadSender{
		url:    url,
		client: &http.Client{Timeout: 30 * time.Second, Transport: &http.Transport{MaxIdleConnsPerHost: 512}},
		spans:  int64(tracesPerRequest * synth.SpansPerTrace),
	}
	gen := synth.New(11, time.Now())
	for range requests {
		b, err := ptraceotlp.NewExportRequestFromTraces(gen.Traces(tracesPerRequest)).MarshalProto()
		if err != nil {
			panic(err)
		}
		s.bodies = append(s.bodies, b)
	}
	return s
}

// send posts the next body and counts the answer: 200 accepted, 429/503
// refused (backpressure), anything else failed.
func (s *loadSender) send() {
	body := s.bodies[int(s.next.Add(1))%len(s.bodies)]
	resp, err := s.client.Post(s.url, "application/x-protobuf", bytes.NewReader(body))
	if err != nil {
		s.failed.Add(1)
		return
	}
	_, _ = io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	switch resp.StatusCode {
	case http.StatusOK:
		s.accepted.Add(1)
	case http.StatusTooManyRequests, http.StatusServiceUnavailable:
		s.refused.Add(1)
	default:
		s.failed.Add(1)
	}
}

// closedLoop sends with workers back to back for d and returns the rate of
// accepted spans per second.
func (s *loadSender) closedLoop(workers int, d time.Duration) float64 {
	before := s.accepted.Load()
	deadline := time.Now().Add(d)
	var wg sync.WaitGroup
	for range workers {
		wg.Go(func() {
			for time.Now().Before(deadline) {
				s.send()
			}
		})
	}
	wg.Wait()
	return float64((s.accepted.Load()-before)*s.spans) / d.Seconds()
}

// openLoop offers spansPerSec for d whatever the answers, each request in
// its own goroutine (at most maxOutstanding at once; beyond, the request is
// not sent and counted as skipped). Every 5ms it sends what is due since the
// start, so a late tick does not lower the rate. It returns the requests
// offered (sent or skipped) and skipped.
func (s *loadSender) openLoop(spansPerSec float64, d time.Duration, maxOutstanding int64) (offered, skipped int64) {
	tick := time.NewTicker(5 * time.Millisecond)
	defer tick.Stop()
	var outstanding atomic.Int64
	var wg sync.WaitGroup
	start := time.Now()
	for now := range tick.C {
		elapsed := now.Sub(start)
		if elapsed > d {
			break
		}
		due := int64(elapsed.Seconds() * spansPerSec / float64(s.spans))
		for ; offered < due; offered++ {
			if outstanding.Load() >= maxOutstanding {
				skipped++
				continue
			}
			outstanding.Add(1)
			wg.Go(func() {
				defer outstanding.Add(-1)
				s.send()
			})
		}
	}
	wg.Wait()
	return offered, skipped
}

func main() {
	url := flag.String("url", "", "OTLP/HTTP traces URL")
	mode := flag.String("mode", "closed", "closed (workers back to back) or open (a fixed rate)")
	workers := flag.Int("workers", 2, "closed loop: senders")
	rate := flag.Float64("rate", 0, "open loop: spans per second offered")
	d := flag.Duration("d", 4*time.Second, "how long")
	maxOutstanding := flag.Int64("cap", 2048, "open loop: requests outstanding at most")
	traces := flag.Int("traces", 50, "traces per request")
	flag.Parse()
	s := newLoadSender(*url, 64, *traces)
	out := map[string]float64{}
	switch *mode {
	case "closed":
		s.closedLoop(*workers, time.Second) // warm up
		s.accepted.Store(0)
		out["rate"] = s.closedLoop(*workers, *d)
	case "open":
		offered, skipped := s.openLoop(*rate, *d, *maxOutstanding)
		out["offered"], out["skipped"] = float64(offered), float64(skipped)
	}
	out["accepted"], out["refused"], out["failed"] = float64(s.accepted.Load()), float64(s.refused.Load()), float64(s.failed.Load())
	out["spans_per_request"] = float64(s.spans)
	_ = json.NewEncoder(os.Stdout).Encode(out)
}
