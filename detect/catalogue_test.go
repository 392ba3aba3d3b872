package detect

import (
	"reflect"
	"regexp"
	"strings"
	"testing"

	"github.com/seed-a49a8342/cartograph/graph/finding"
	"github.com/stretchr/testify/require"
)

func TestCatalogueCoversEveryOption(t *testing.T) {
	cat := Catalogue()
	require.NotEmpty(t, cat)
	seen := map[string]bool{}
	for _, th := range cat {
		require.NotEmpty(t, th.Unit, "%s.%s has no unit in thresholdDocs", th.Detector, th.Key)
		require.NotEmpty(t, th.Doc, "%s.%s has no doc in thresholdDocs", th.Detector, th.Key)
		if !strings.Contains(th.Doc, "(0: off)") {
			require.NotEqual(t, "0", th.Default, "%s.%s defaults to zero: withDefaults misses it", th.Detector, th.Key)
		}
		seen[th.Detector+"."+th.Key] = true
	}
	for d, keys := range thresholdDocs {
		for k := range keys {
			require.True(t, seen[d+"."+k], "thresholdDocs documents %s.%s, which no option has", d, k)
		}
	}

	// Every other option is the message template, listed by Messages.
	msgs := Messages()
	require.Len(t, msgs, len(messageTemplates))
	for i, d := range []struct {
		name string
		opts any
	}{
		{"retry_storm", RetryStormOptions{}}, {"open_circuit", OpenCircuitOptions{}},
		{"consumer_lag", ConsumerLagOptions{}}, {"bottleneck", BottleneckOptions{}},
	} {
		m := msgs[i]
		require.Equal(t, d.name, m.Detector)
		typ := reflect.TypeOf(d.opts)
		for f := range typ.Fields() {
			key, _, _ := strings.Cut(f.Tag.Get("yaml"), ",")
			if key == messageKey {
				require.Equal(t, messageKey, m.Key)
				require.Equal(t, reflect.String, f.Type.Kind())
				continue
			}
			require.True(t, seen[m.Detector+"."+key], "%s.%s is neither a threshold nor the message", m.Detector, key)
		}
	}
}

func TestMessagesDocumented(t *testing.T) {
	field := regexp.MustCompile(`\.[A-Z][A-Za-z0-9]*(\.[A-Z][A-Za-z0-9]*)*`)
	for _, m := range Messages() {
		require.NotEmpty(t, m.Template, m.Detector)
		var k finding.Kind
		require.NoError(t, k.UnmarshalText([]byte(m.Detector)))
		require.NoError(t, validateMessage(k, m.Template))
		names := map[string]bool{}
		for _, f := range m.Fields {
			require.NotEmpty(t, f.Doc, "%s: field %s has no doc tag", m.Detector, f.Name)
			names[f.Name] = true
		}
		for _, used := range field.FindAllString(m.Template, -1) {
			require.True(t, names[used], "%s: the default template uses %s, which Fields does not list", m.Detector, used)
		}
	}
	funcs := messageFuncs()
	require.Len(t, MessageFuncs(), len(funcs))
	for _, f := range MessageFuncs() {
		require.Contains(t, funcs, f.Name)
		require.NotEmpty(t, f.Doc)
	}
}
