package enumtext

import (
	"testing"

	"github.com/stretchr/testify/require"
)

type color uint8

func TestNames(t *testing.T) {
	n := Names[color]{Type: "color", List: []string{"", "red", "green"}}
	require.Equal(t, "green", n.String(2))
	require.Equal(t, "color(0)", n.String(0))
	require.Equal(t, "color(7)", n.String(7))
	_, err := n.Marshal(0)
	require.Error(t, err)
	b, err := n.Marshal(1)
	require.NoError(t, err)
	require.Equal(t, "red", string(b))
	v, err := n.Unmarshal([]byte("green"))
	require.NoError(t, err)
	require.Equal(t, color(2), v)
	_, err = n.Unmarshal([]byte(""))
	require.Error(t, err, "the zero value is not valid here")
	_, err = n.Unmarshal([]byte("blue"))
	require.ErrorContains(t, err, `unknown color "blue"`)

	z := Names[color]{Type: "protocol", List: []string{"", "http"}, ZeroValid: true}
	v, err = z.Unmarshal([]byte(""))
	require.NoError(t, err)
	require.Equal(t, color(0), v)
	require.Equal(t, "", z.String(0))
}
