package detect

import (
	"strings"
	"testing"

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
}
