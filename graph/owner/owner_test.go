package owner_test

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/seed-a49a8342/cartograph/graph/owner"
)

func TestLoadCatalog(t *testing.T) {
	tests := []struct {
		name string
		path string
		want map[string]string
	}{
		{"catalog-info YAML, several documents", "testdata/catalog/catalog-info.yaml", map[string]string{
			"checkout":  "team-payments",
			"inventory": "group:default/team-stock", // by the annotation, not metadata.name
		}},
		{"entities JSON", "testdata/entities.json", map[string]string{
			"frontend": "team-web",
			"payments": "team-payments",
		}},
		{"directory", "testdata", map[string]string{
			"checkout": "team-payments", "inventory": "group:default/team-stock",
			"frontend": "team-web", "payments": "team-payments",
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := owner.LoadCatalog(tt.path, 0)
			if err != nil {
				t.Fatal(err)
			}
			if len(got) != len(tt.want) {
				t.Errorf("got %v, want %v", got, tt.want)
			}
			for k, v := range tt.want {
				if got[k] != v {
					t.Errorf("%s: got %q, want %q", k, got[k], v)
				}
			}
		})
	}
}

func TestLoadCatalogErrors(t *testing.T) {
	dir := t.TempDir()
	bad := filepath.Join(dir, "bad.yaml")
	if err := os.WriteFile(bad, []byte("kind: Component\nmetadata: [unclosed\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	if _, err := owner.LoadCatalog(bad, 0); err == nil || !strings.Contains(err.Error(), "bad.yaml") {
		t.Errorf("malformed YAML: got %v, want an error naming the file", err)
	}
	if _, err := owner.LoadCatalog(filepath.Join(dir, "missing.yaml"), 0); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("missing file: got %v, want ErrNotExist", err)
	}
	if _, err := owner.LoadCatalog("testdata", 3); !errors.Is(err, owner.ErrTooLarge) {
		t.Errorf("4 components, at most 3: got %v, want ErrTooLarge", err)
	}
}

func TestResolverOwner(t *testing.T) {
	catalog, err := owner.LoadCatalog("testdata/catalog/catalog-info.yaml", 0)
	if err != nil {
		t.Fatal(err)
	}
	r := owner.NewResolver([]string{"team", "service.owner"}, catalog)
	long := strings.Repeat("é", owner.MaxOwnerBytes) // 2 bytes each
	tests := []struct {
		name    string
		service string
		attrs   map[string]string
		want    string
	}{
		{"first attribute", "x", map[string]string{"team": "t1", "service.owner": "o1"}, "t1"},
		{"second attribute when the first is empty", "x", map[string]string{"team": " ", "service.owner": "o1"}, "o1"},
		{"attribute before the catalog", "checkout", map[string]string{"team": "t1"}, "t1"},
		{"catalog by name", "checkout", nil, "team-payments"},
		{"catalog by annotation", "inventory", map[string]string{"k8s.namespace.name": "shop"}, "group:default/team-stock"},
		{"component without owner", "orphan", nil, ""},
		{"unknown", "nobody", nil, ""},
		{"bounded at a UTF-8 boundary", "x", map[string]string{"team": long}, strings.Repeat("é", owner.MaxOwnerBytes/2)},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := r.Owner(tt.service, tt.attrs); got != tt.want {
				t.Errorf("got %q, want %q", got, tt.want)
			}
		})
	}
	if got := owner.NewResolver(nil, nil).Owner("checkout", map[string]string{"team": "t"}); got != "" {
		t.Errorf("no attributes, no catalog: got %q", got)
	}
}
