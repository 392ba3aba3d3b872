// Package owner names the team that owns a service: from one of its
// resource attributes (team, service.owner, ...) or from a Backstage
// catalog. The attribute comes first: it travels with the telemetry of the
// running service, set by whoever deploys it, so it is right for the
// instance that is actually serving; the catalog is what most services are
// registered under and fills in for those that send no owner.
package owner

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"unicode/utf8"

	"go.yaml.in/yaml/v3"
)

// MaxOwnerBytes bounds an owner name, in bytes; longer ones are cut (at a
// UTF-8 boundary).
const MaxOwnerBytes = 128

// ServiceNameAnnotation is the annotation of a Backstage Component that
// names the OpenTelemetry service.name it runs as, when that differs from
// the component's metadata.name. It wins over metadata.name.
const ServiceNameAnnotation = "opentelemetry.io/service-name"

// DefaultMaxEntities bounds the components read from a catalog.
const DefaultMaxEntities = 100_000

// Resolver names owners. It is immutable once made: safe for concurrent
// use.
type Resolver struct {
	attrs   []string
	catalog map[string]string // service name -> owner
}

// NewResolver returns a resolver that looks at attrs in order (the first
// non-empty value is the owner), then at catalog (service name -> owner,
// as LoadCatalog returns; nil: none). It keeps both; do not modify them.
func NewResolver(attrs []string, catalog map[string]string) *Resolver {
	return &Resolver{attrs: attrs, catalog: catalog}
}

// Owner returns the owner of the service named service with the kept
// resource attributes attrs: the first of the resolver's attributes that
// has a value, else the catalog's owner of the service, else "".
func (r *Resolver) Owner(service string, attrs map[string]string) string {
	for _, k := range r.attrs {
		if v := strings.TrimSpace(attrs[k]); v != "" {
			return bound(v)
		}
	}
	return r.catalog[service]
}

// bound cuts s to MaxOwnerBytes at a UTF-8 boundary.
func bound(s string) string {
	if len(s) <= MaxOwnerBytes {
		return s
	}
	s = s[:MaxOwnerBytes]
	for len(s) > 0 && !utf8.ValidString(s) {
		s = s[:len(s)-1]
	}
	return s
}

// entity is the part of a Backstage catalog entity read here.
type entity struct {
	Kind     string `json:"kind" yaml:"kind"`
	Metadata struct {
		Name        string            `json:"name" yaml:"name"`
		Annotations map[string]string `json:"annotations" yaml:"annotations"`
	} `json:"metadata" yaml:"metadata"`
	Spec struct {
		Owner string `json:"owner" yaml:"owner"`
	} `json:"spec" yaml:"spec"`
}

// ErrTooLarge is returned when a catalog holds more components than
// allowed.
var ErrTooLarge = errors.New("owner: catalog too large")

// maxFileBytes bounds one catalog file.
const maxFileBytes = 64 << 20

// LoadCatalog reads the Backstage catalog at path: a catalog-info.yaml
// file (one or more YAML documents), a JSON file of entities as
// GET /api/catalog/entities answers (an array, or an object with
// "items"), or a directory, whose *.yaml, *.yml and *.json files are read
// (recursively). It returns the owner (spec.owner) of each Component
// entity by service name: the ServiceNameAnnotation when set, else
// metadata.name. Other kinds, and components without an owner, are
// skipped. More than maxEntities components (<= 0: DefaultMaxEntities)
// is an error wrapping ErrTooLarge.
func LoadCatalog(path string, maxEntities int) (map[string]string, error) {
	if maxEntities <= 0 {
		maxEntities = DefaultMaxEntities
	}
	out := map[string]string{}
	info, err := os.Stat(path)
	if err != nil {
		return nil, fmt.Errorf("owner: catalog: %w", err)
	}
	if !info.IsDir() {
		return out, loadFile(path, out, maxEntities)
	}
	err = filepath.WalkDir(path, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		switch strings.ToLower(filepath.Ext(p)) {
		case ".yaml", ".yml", ".json":
			if !d.IsDir() {
				return loadFile(p, out, maxEntities)
			}
		}
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("owner: catalog %s: %w", path, err)
	}
	return out, nil
}

// loadFile adds the components of the catalog file at path to out.
func loadFile(path string, out map[string]string, maxEntities int) error {
	f, err := os.Open(path)
	if err != nil {
		return fmt.Errorf("owner: catalog: %w", err)
	}
	defer f.Close()
	b, err := io.ReadAll(io.LimitReader(f, maxFileBytes+1))
	if err != nil {
		return fmt.Errorf("owner: catalog %s: %w", path, err)
	}
	if len(b) > maxFileBytes {
		return fmt.Errorf("owner: catalog %s: more than %d bytes: %w", path, maxFileBytes, ErrTooLarge)
	}
	var ents []entity
	if t := bytes.TrimSpace(b); len(t) > 0 && (t[0] == '[' || t[0] == '{') && json.Valid(t) {
		ents, err = decodeJSON(t)
	} else {
		ents, err = decodeYAML(b)
	}
	if err != nil {
		return fmt.Errorf("owner: catalog %s: %w", path, err)
	}
	for _, e := range ents {
		if !strings.EqualFold(e.Kind, "Component") || strings.TrimSpace(e.Spec.Owner) == "" {
			continue
		}
		name := cmpOr(strings.TrimSpace(e.Metadata.Annotations[ServiceNameAnnotation]), strings.TrimSpace(e.Metadata.Name))
		if name == "" {
			continue
		}
		if _, ok := out[name]; !ok && len(out) >= maxEntities {
			return fmt.Errorf("owner: catalog %s: more than %d components: %w", path, maxEntities, ErrTooLarge)
		}
		out[name] = bound(strings.TrimSpace(e.Spec.Owner))
	}
	return nil
}

func cmpOr(a, b string) string {
	if a != "" {
		return a
	}
	return b
}

// decodeJSON reads the entities of /api/catalog/entities (an array) or of
// /api/catalog/entities/by-query (an object with "items").
func decodeJSON(b []byte) ([]entity, error) {
	if b[0] == '[' {
		var ents []entity
		if err := json.Unmarshal(b, &ents); err != nil {
			return nil, fmt.Errorf("entities JSON: %w", err)
		}
		return ents, nil
	}
	var page struct {
		Items []entity `json:"items"`
	}
	if err := json.Unmarshal(b, &page); err != nil {
		return nil, fmt.Errorf("entities JSON: %w", err)
	}
	if page.Items == nil {
		// A single entity.
		var e entity
		if err := json.Unmarshal(b, &e); err != nil {
			return nil, fmt.Errorf("entity JSON: %w", err)
		}
		return []entity{e}, nil
	}
	return page.Items, nil
}

// decodeYAML reads every document of a catalog-info.yaml file.
func decodeYAML(b []byte) ([]entity, error) {
	dec := yaml.NewDecoder(bytes.NewReader(b))
	var ents []entity
	for {
		var e entity
		err := dec.Decode(&e)
		if errors.Is(err, io.EOF) {
			return ents, nil
		}
		if err != nil {
			return nil, fmt.Errorf("YAML document %d: %w", len(ents)+1, err)
		}
		ents = append(ents, e)
	}
}
