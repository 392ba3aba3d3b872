package main

import (
	"io"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

// TestIdleExpiryFollowsTheWindow: unset, --idle-expiry grows with a long
// window (nothing of the window may leave memory); set explicitly below
// what the window needs, it is refused with a message, never replaced.
func TestIdleExpiryFollowsTheWindow(t *testing.T) {
	c, err := parseConfig([]string{"--window=15m"}, func(string) string { return "" }, io.Discard)
	require.NoError(t, err)
	require.Equal(t, 15*time.Minute+2*75*time.Second, c.IdleExpiry)
	c, err = parseConfig(nil, func(string) string { return "" }, io.Discard)
	require.NoError(t, err)
	require.Equal(t, 15*time.Minute, c.IdleExpiry)
	_, err = parseConfig([]string{"--window=15m", "--idle-expiry=15m"}, func(string) string { return "" }, io.Discard)
	require.ErrorContains(t, err, "--idle-expiry 15m0s must be at least 17m30s")
}

// TestModesTyped: --storage and --detect are typed: a known name, from
// the flag or the environment, sets the mode; anything else is refused at
// parse time with the names there are.
func TestModesTyped(t *testing.T) {
	for _, tc := range []struct {
		name    string
		args    []string
		env     map[string]string
		storage storageBackend
		detect  detectMode
		wantErr string
	}{
		{name: "defaults", storage: storageEmbedded, detect: detectLocal},
		{name: "flags", args: []string{"--storage=clickhouse", "--clickhouse-dsn=clickhouse://x:9000/db", "--detect=merged"}, storage: storageClickHouse, detect: detectMerged},
		{name: "env", env: map[string]string{"CARTOGRAPH_DETECT": "off"}, storage: storageEmbedded, detect: detectOff},
		{name: "unknown storage", args: []string{"--storage=postgres"}, wantErr: "want one of embedded, clickhouse"},
		{name: "unknown detect mode", env: map[string]string{"CARTOGRAPH_DETECT": "Local"}, wantErr: "want one of local, merged, off"},
		{name: "clickhouse without dsn", args: []string{"--storage=clickhouse"}, wantErr: "needs --clickhouse-dsn"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c, err := parseConfig(tc.args, func(k string) string { return tc.env[k] }, io.Discard)
			if tc.wantErr != "" {
				require.ErrorContains(t, err, tc.wantErr)
				return
			}
			require.NoError(t, err)
			require.Equal(t, tc.storage, c.Storage)
			require.Equal(t, tc.detect, c.Detect)
		})
	}
}

func TestNodeAttributesFlag(t *testing.T) {
	for _, tc := range []struct {
		name    string
		args    []string
		env     map[string]string
		want    []string
		wantErr string
	}{
		{name: "default", want: []string{"service.version", "k8s.namespace.name", "k8s.deployment.name", "k8s.statefulset.name", "deployment.environment.name", "deployment.environment", "team", "service.owner"}},
		{name: "flag", args: []string{"--node-attributes=team, cloud.region"}, want: []string{"team", "cloud.region"}},
		{name: "env", env: map[string]string{"CARTOGRAPH_NODE_ATTRIBUTES": "team"}, want: []string{"team"}},
		{name: "none", args: []string{"--node-attributes="}, want: nil},
		{name: "twice", args: []string{"--node-attributes=team,team"}, wantErr: `--node-attributes: semconv: node attribute "team" named twice`},
		{name: "service.name", args: []string{"--node-attributes=service.name"}, wantErr: "kept already"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c, err := parseConfig(tc.args, func(k string) string { return tc.env[k] }, io.Discard)
			if tc.wantErr != "" {
				require.ErrorContains(t, err, tc.wantErr)
				return
			}
			require.NoError(t, err)
			require.Equal(t, tc.want, []string(c.NodeAttributes))
		})
	}
}

// TestOwnerAttributesKept: the --owner-attributes are kept on service nodes
// whether or not --node-attributes names them, within the same bound.
func TestOwnerAttributesKept(t *testing.T) {
	for _, tc := range []struct {
		name    string
		args    []string
		want    []string
		wantErr string
	}{
		{name: "default: among the node attributes", want: defaultNodeAttributes()},
		{name: "added", args: []string{"--node-attributes=k8s.namespace.name", "--owner-attributes=squad,team"}, want: []string{"k8s.namespace.name", "squad", "team"}},
		{name: "no node attributes", args: []string{"--node-attributes=", "--owner-attributes=team"}, want: []string{"team"}},
		{name: "none", args: []string{"--node-attributes=", "--owner-attributes="}, want: nil},
		{name: "beyond the bound", args: []string{"--node-attributes=a,b,c,d,e,f,g,h,i,j,k,l,m,n,o,p", "--owner-attributes=team"},
			wantErr: "--node-attributes with --owner-attributes: semconv: 17 node attributes, at most 16"},
		{name: "catalog bound", args: []string{"--max-catalog-components=0"}, wantErr: "--max-catalog-components must be at least 1"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c, err := parseConfig(tc.args, func(string) string { return "" }, io.Discard)
			if tc.wantErr != "" {
				require.ErrorContains(t, err, tc.wantErr)
				return
			}
			require.NoError(t, err)
			require.Equal(t, tc.want, c.keptAttributes())
		})
	}
}
