package main

import (
	"io"
	"runtime"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"
)

func TestVersionFlag(t *testing.T) {
	for name, tc := range map[string]struct {
		args    []string
		env     map[string]string
		wantErr error
	}{
		"single dash":                  {args: []string{"-version"}, wantErr: errVersion},
		"double dash":                  {args: []string{"--version"}, wantErr: errVersion},
		"wins over a bad flag value":   {args: []string{"-version", "-eval-interval", "0s"}, wantErr: errVersion},
		"not read from the env":        {env: map[string]string{"CARTOGRAPH_VERSION": "1.2.3"}},
		"absent: the collector starts": {},
	} {
		t.Run(name, func(t *testing.T) {
			_, err := parseConfig(tc.args, func(k string) string { return tc.env[k] }, io.Discard)
			if tc.wantErr != nil {
				require.ErrorIs(t, err, tc.wantErr)
				return
			}
			require.NoError(t, err)
		})
	}
}

func TestPrintVersion(t *testing.T) {
	var b strings.Builder
	printVersion(&b, "collector")
	out := b.String()
	require.True(t, strings.HasPrefix(out, "cartograph collector "), out)
	for _, field := range []string{"module", "revision", "time", "go        " + runtime.Version()} {
		require.Contains(t, out, "\n  "+field, out)
	}
}
