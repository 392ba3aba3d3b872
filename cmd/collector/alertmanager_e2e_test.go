package main

import (
	"cmp"
	"context"
	"encoding/json"
	"fmt"
	"net"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	"go.opentelemetry.io/collector/pdata/pmetric/pmetricotlp"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/trace"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"

	"github.com/seed-a49a8342/cartograph/cmd/testenv/need"
)

// startAlertmanager runs a real Alertmanager on a free loopback port, with
// one receiver that notifies nobody, and returns its base URL. It is
// stopped when the test ends.
func startAlertmanager(t *testing.T) string {
	t.Helper()
	return startAlertmanagerWith(t, "route:\n  receiver: nobody\nreceivers:\n  - name: nobody\n")
}

// startAlertmanagerWith is startAlertmanager with the configuration
// config.
func startAlertmanagerWith(t *testing.T, config string) string {
	t.Helper()
	bin := need.Alertmanager(t)
	dir := t.TempDir()
	cfg := filepath.Join(dir, "alertmanager.yml")
	require.NoError(t, os.WriteFile(cfg, []byte(config), 0o600))
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	addr := ln.Addr().String()
	require.NoError(t, ln.Close())
	logf, err := os.Create(filepath.Join(dir, "alertmanager.log"))
	require.NoError(t, err)
	cmd := exec.Command(bin, "--config.file="+cfg, "--storage.path="+filepath.Join(dir, "data"),
		"--web.listen-address="+addr, "--cluster.listen-address=", "--log.level=warn")
	cmd.Stdout, cmd.Stderr = logf, logf
	require.NoError(t, cmd.Start())
	t.Cleanup(func() {
		_ = cmd.Process.Kill()
		_ = cmd.Wait()
		logf.Close()
		if t.Failed() {
			b, _ := os.ReadFile(logf.Name())
			t.Logf("alertmanager log:\n%s", b)
		}
	})
	base := "http://" + addr
	require.Eventually(t, func() bool {
		resp, err := http.Get(base + "/-/ready")
		if err != nil {
			return false
		}
		resp.Body.Close()
		return resp.StatusCode == http.StatusOK
	}, 20*time.Second, 50*time.Millisecond, "alertmanager never became ready")
	return base
}

// amAlert is a gettableAlert of Alertmanager's API v2.
type amAlert struct {
	Labels      map[string]string `json:"labels"`
	Annotations map[string]string `json:"annotations"`
	StartsAt    time.Time         `json:"startsAt"`
	EndsAt      time.Time         `json:"endsAt"`
	Fingerprint string            `json:"fingerprint"`
	Status      struct {
		State string `json:"state"`
	} `json:"status"`
}

// activeAlerts asks Alertmanager for its active alerts (GET /api/v2/alerts:
// resolved alerts are not listed) carrying finding_id=id.
func activeAlerts(t *testing.T, base, id string) []amAlert {
	t.Helper()
	q := url.Values{"active": {"true"}, "filter": {fmt.Sprintf("finding_id=%q", id)}}
	resp, err := http.Get(base + "/api/v2/alerts?" + q.Encode())
	require.NoError(t, err)
	defer resp.Body.Close()
	require.Equal(t, http.StatusOK, resp.StatusCode)
	var alerts []amAlert
	require.NoError(t, json.NewDecoder(resp.Body).Decode(&alerts))
	now := time.Now()
	for _, a := range alerts {
		require.Equal(t, id, a.Labels["finding_id"])
		require.True(t, a.EndsAt.After(now.Add(-time.Second)), "listed as active after its endsAt: %+v", a)
	}
	return alerts
}

// TestE2EAlertmanagerSeverityChange runs a real Alertmanager (built from
// the Go module proxy) receiving from the collector's pusher, and drives a
// consumer group that falls behind (consumer_lag, warning), then stalls
// (the same finding, critical), then catches up (resolved), through the
// kafkametrics receiver's OTLP metrics. Alertmanager's own API must show
// exactly one active alert for the finding throughout, carrying the
// current severity, and none once it resolved: a severity change updates
// the alert, never starts a second one beside a stale one.
func TestE2EAlertmanagerSeverityChange(t *testing.T) {
	am := startAlertmanager(t)
	cfgFile := filepath.Join(t.TempDir(), "cartograph.yaml")
	// Re-sent every second with endsAt 4 s ahead: a stale alert left
	// behind would stay active for up to 4 s, long enough to be seen.
	require.NoError(t, os.WriteFile(cfgFile, []byte("alertmanager:\n  interval: 1s\n"), 0o600))
	col := startCollector(t, "--config="+cfgFile, "--alertmanager-url="+am,
		"--eval-interval=1s", "--window=2s", "--bucket=500ms")

	tp := newTracerProvider(t, grpcExporter(t, col.OTLPGRPC), "shop", "")
	billing := newTracerProvider(t, grpcExporter(t, col.OTLPGRPC), "billing", "")
	ctx := context.Background()
	sendTraces := func() {
		pctx, p := tp.Tracer("e2e").Start(ctx, "publish orders", trace.WithSpanKind(trace.SpanKindProducer),
			trace.WithAttributes(attribute.String("messaging.system", "kafka"), attribute.String("messaging.destination.name", "orders")))
		p.End()
		_, c := billing.Tracer("e2e").Start(ctx, "process orders", trace.WithSpanKind(trace.SpanKindConsumer),
			trace.WithLinks(trace.Link{SpanContext: trace.SpanContextFromContext(pctx)}),
			trace.WithAttributes(attribute.String("messaging.system", "kafka"), attribute.String("messaging.destination.name", "orders"),
				attribute.String("messaging.consumer.group.name", "billing")))
		c.End()
		require.NoError(t, tp.ForceFlush(ctx))
		require.NoError(t, billing.ForceFlush(ctx))
	}
	conn, err := grpc.NewClient(col.OTLPGRPC.String(), grpc.WithTransportCredentials(insecure.NewCredentials()))
	require.NoError(t, err)
	t.Cleanup(func() { conn.Close() })
	metrics := pmetricotlp.NewGRPCClient(conn)
	send := func(lagMsgs, committed int64) {
		sendTraces()
		resp, err := metrics.Export(ctx, pmetricotlp.NewExportRequestFromMetrics(kafkaLagMetrics(time.Now(), lagMsgs, committed)))
		require.NoError(t, err)
		require.Zero(t, resp.PartialSuccess().RejectedDataPoints(), resp.PartialSuccess().ErrorMessage())
	}
	lagFinding := func(state string) *wireFinding {
		for _, f := range getFindings(t, col, state) {
			if f.Kind == "consumer_lag" {
				return &f
			}
		}
		return nil
	}
	// severity is the alert's severity, wherever it is carried.
	severity := func(a amAlert) string { return cmp.Or(a.Annotations["severity"], a.Labels["severity"]) }
	// oneActive waits until Alertmanager's one active alert for id carries
	// severity sev, failing at once if it ever lists two.
	oneActive := func(id, sev string, within time.Duration, step func()) amAlert {
		t.Helper()
		deadline := time.Now().Add(within)
		for {
			step()
			alerts := activeAlerts(t, am, id)
			require.LessOrEqual(t, len(alerts), 1, "more than one active alert for finding %s: %+v", id, alerts)
			if len(alerts) == 1 && severity(alerts[0]) == sev {
				return alerts[0]
			}
			require.True(t, time.Now().Before(deadline), "no active %s alert for finding %s in Alertmanager; it lists %+v", sev, id, alerts)
			time.Sleep(250 * time.Millisecond)
		}
	}

	// Healthy, then the group falls behind while still consuming: warning.
	for i := range 3 {
		send(0, int64(100*i))
		time.Sleep(300 * time.Millisecond)
	}
	var warn *wireFinding
	committed, lagMsgs := int64(300), int64(0)
	grow := func() { lagMsgs += 50; send(lagMsgs, committed) }
	for i := 0; warn == nil; i++ {
		require.Less(t, i, 60, "consumer_lag never fired")
		committed += 10
		grow()
		time.Sleep(250 * time.Millisecond)
		warn = lagFinding("firing")
	}
	require.Equal(t, "warning", warn.Severity)
	first := oneActive(warn.ID, "warning", 10*time.Second, func() { committed += 10; grow() })
	require.Equal(t, "CartographConsumerLag", first.Labels["alertname"])

	// The group's position stops moving with lag: stalled, critical. The
	// finding is the same one, now critical.
	esc := oneActive(warn.ID, "critical", 15*time.Second, grow)
	require.Equal(t, first.Fingerprint, esc.Fingerprint, "the same alert series, updated")
	require.NotContains(t, esc.Labels, "severity", "severity changes during a finding's life: it is not part of the alert's identity")
	require.Equal(t, "critical", esc.Annotations["severity"])
	require.Equal(t, first.StartsAt, esc.StartsAt)
	f := lagFinding("firing")
	require.NotNil(t, f)
	require.Equal(t, warn.ID, f.ID)
	require.Equal(t, "critical", f.Severity)
	// While it stays critical, across several re-sends (and past the 4 s
	// a stale alert would have lived), still exactly one.
	for range 6 {
		grow()
		alerts := activeAlerts(t, am, warn.ID)
		require.Len(t, alerts, 1)
		require.Equal(t, "critical", severity(alerts[0]))
		time.Sleep(500 * time.Millisecond)
	}

	// It catches up: the finding resolves, and Alertmanager lists no active
	// alert for it.
	require.Eventually(t, func() bool {
		send(0, committed+lagMsgs)
		return lagFinding("firing") == nil && lagFinding("resolved") != nil
	}, 15*time.Second, 250*time.Millisecond, "consumer_lag never resolved")
	require.Eventually(t, func() bool {
		send(0, committed+lagMsgs)
		return len(activeAlerts(t, am, warn.ID)) == 0
	}, 5*time.Second, 250*time.Millisecond, "Alertmanager still lists an active alert for the resolved finding")
}
