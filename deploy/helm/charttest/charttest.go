// Package charttest renders the Helm chart in deploy/helm/cartograph with
// a real helm binary and decodes every object it renders strictly into
// the Kubernetes API types (an unknown or misspelt field fails, as the API
// server's strict field validation would), for the tests that check the
// chart: its own, and those of cmd/collector and cmd/ui, which check the
// rendered command lines against their real flag sets.
//
// It is test support: nothing outside tests imports it. Helm is found
// through $CARTOGRAPH_TEST_HELM, which the test command (cmd/testenv)
// sets after building Helm 4 once.
package charttest

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"runtime"
	"slices"
	"sort"
	"strings"
	"testing"

	monitoringv1 "github.com/prometheus-operator/prometheus-operator/pkg/apis/monitoring/v1"
	appsv1 "k8s.io/api/apps/v1"
	batchv1 "k8s.io/api/batch/v1"
	corev1 "k8s.io/api/core/v1"
	rbacv1 "k8s.io/api/rbac/v1"
	apivalidation "k8s.io/apimachinery/pkg/api/validation"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/yaml"

	"github.com/seed-a49a8342/cartograph/cmd/testenv/need"
)

// Release and Namespace are what Render installs the chart as.
const (
	Release   = "carto"
	Namespace = "cartograph-test"
)

// ChartDir returns the absolute path of deploy/helm/cartograph.
func ChartDir() string {
	_, file, _, _ := runtime.Caller(0)
	return filepath.Join(filepath.Dir(file), "..", "cartograph")
}

// RepoRoot returns the absolute path of the repository.
func RepoRoot() string { return filepath.Join(ChartDir(), "..", "..", "..") }

// Helm returns the path of the helm binary the test command provides
// (need.Helm: $CARTOGRAPH_TEST_HELM), or fails t saying how to get one.
func Helm(t testing.TB) string {
	t.Helper()
	return need.Helm(t)
}

// ValuesFiles returns the chart's ci/*-values.yaml files, each a
// configuration that must render.
func ValuesFiles(t testing.TB) []string {
	t.Helper()
	files, err := filepath.Glob(filepath.Join(ChartDir(), "ci", "*-values.yaml"))
	if err != nil || len(files) == 0 {
		t.Fatalf("no values files in %s: %v", filepath.Join(ChartDir(), "ci"), err)
	}
	return files
}

// Options are helm template's release name, namespace, values file and
// --set values.
type Options struct {
	Release, Namespace string
	// Values is a values file; empty for the chart's defaults.
	Values string
	// Set are --set arguments, name=value each.
	Set []string
}

// Template runs `helm template` and returns what it renders, hooks
// included. An error carries helm's own message (a `fail` in a template
// surfaces there).
func Template(helm string, o Options) ([]byte, error) {
	args := []string{"template", o.Release, ChartDir(), "--namespace", o.Namespace}
	if o.Values != "" {
		args = append(args, "--values", o.Values)
	}
	for _, kv := range o.Set {
		args = append(args, "--set", kv)
	}
	cmd := exec.Command(helm, args...)
	cmd.Env = append(os.Environ(), "HELM_CACHE_HOME="+os.TempDir(), "HELM_CONFIG_HOME="+os.TempDir(), "HELM_DATA_HOME="+os.TempDir())
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		return nil, fmt.Errorf("helm %s: %w: %s", strings.Join(args, " "), err, strings.TrimSpace(stderr.String()))
	}
	return out, nil
}

// Render renders the chart with the values file (as Release in
// Namespace) and decodes it, failing t on any error.
func Render(t testing.TB, values string) *Manifest {
	t.Helper()
	out, err := Template(Helm(t), Options{Release: Release, Namespace: Namespace, Values: values})
	if err != nil {
		t.Fatal(err)
	}
	m, err := Decode(out)
	if err != nil {
		t.Fatalf("%s: %v", filepath.Base(values), err)
	}
	return m
}

// Object is one rendered object.
type Object struct {
	Kind, Name string
	// Source is the template it came from (helm's "# Source:" line).
	Source string
	// Value is a pointer to the typed object (*appsv1.Deployment, ...).
	Value any
}

// Manifest is what the chart rendered, by kind.
type Manifest struct {
	Objects         []Object
	Deployments     []*appsv1.Deployment
	StatefulSets    []*appsv1.StatefulSet
	Jobs            []*batchv1.Job
	Services        []*corev1.Service
	ConfigMaps      []*corev1.ConfigMap
	PVCs            []*corev1.PersistentVolumeClaim
	ServiceAccounts []*corev1.ServiceAccount
	Roles           []*rbacv1.Role
	RoleBindings    []*rbacv1.RoleBinding
	ServiceMonitors []*monitoringv1.ServiceMonitor
}

var (
	docSeparator = regexp.MustCompile(`(?m)^---[ \t]*$`)
	sourceLine   = regexp.MustCompile(`(?m)^# Source: (.+)$`)
)

// ErrUnknownKind is returned by Decode for an object of a kind it has no
// type for: the chart's tests would not check it.
var ErrUnknownKind = errors.New("charttest: no type for this kind")

// Decode splits a rendered manifest into its documents and decodes each
// into its Kubernetes API type by apiVersion and kind: YAML with duplicate
// keys, a field the type does not have, a value of the wrong type or
// trailing data all fail. Object metadata is checked as the API server
// does (names, labels, annotations).
func Decode(manifest []byte) (*Manifest, error) {
	m := &Manifest{}
	for _, doc := range docSeparator.Split(string(manifest), -1) {
		if strings.TrimSpace(stripComments(doc)) == "" {
			continue
		}
		source := ""
		if s := sourceLine.FindStringSubmatch(doc); s != nil {
			source = s[1]
		}
		js, err := yaml.YAMLToJSONStrict([]byte(doc))
		if err != nil {
			return nil, fmt.Errorf("%s: %w", source, err)
		}
		var tm metav1.TypeMeta
		if err := json.Unmarshal(js, &tm); err != nil {
			return nil, fmt.Errorf("%s: %w", source, err)
		}
		obj, err := m.add(tm)
		if err != nil {
			return nil, fmt.Errorf("%s: %s %s: %w", source, tm.APIVersion, tm.Kind, err)
		}
		dec := json.NewDecoder(bytes.NewReader(js))
		dec.DisallowUnknownFields()
		if err := dec.Decode(obj.Value); err != nil {
			return nil, fmt.Errorf("%s: %s: %w", source, tm.Kind, err)
		}
		if dec.More() {
			return nil, fmt.Errorf("%s: %s: data after the object", source, tm.Kind)
		}
		meta := objectMeta(obj.Value)
		obj.Name, obj.Source = meta.Name, source
		nameFn := apivalidation.NameIsDNSSubdomain
		if tm.Kind == "Service" {
			nameFn = apivalidation.NameIsDNS1035Label
		}
		namespaced := true
		if errs := apivalidation.ValidateObjectMeta(meta, namespaced, nameFn, nil); len(errs) > 0 {
			return nil, fmt.Errorf("%s: %s %s: %v", source, tm.Kind, meta.Name, errs.ToAggregate())
		}
		m.Objects = append(m.Objects, obj)
	}
	return m, nil
}

// add makes the typed value of an object of kind tm, and files it under
// its kind.
func (m *Manifest) add(tm metav1.TypeMeta) (Object, error) {
	o := Object{Kind: tm.Kind}
	switch tm.APIVersion + " " + tm.Kind {
	case "apps/v1 Deployment":
		v := &appsv1.Deployment{}
		m.Deployments, o.Value = append(m.Deployments, v), v
	case "apps/v1 StatefulSet":
		v := &appsv1.StatefulSet{}
		m.StatefulSets, o.Value = append(m.StatefulSets, v), v
	case "batch/v1 Job":
		v := &batchv1.Job{}
		m.Jobs, o.Value = append(m.Jobs, v), v
	case "v1 Service":
		v := &corev1.Service{}
		m.Services, o.Value = append(m.Services, v), v
	case "v1 ConfigMap":
		v := &corev1.ConfigMap{}
		m.ConfigMaps, o.Value = append(m.ConfigMaps, v), v
	case "v1 PersistentVolumeClaim":
		v := &corev1.PersistentVolumeClaim{}
		m.PVCs, o.Value = append(m.PVCs, v), v
	case "v1 ServiceAccount":
		v := &corev1.ServiceAccount{}
		m.ServiceAccounts, o.Value = append(m.ServiceAccounts, v), v
	case "rbac.authorization.k8s.io/v1 Role":
		v := &rbacv1.Role{}
		m.Roles, o.Value = append(m.Roles, v), v
	case "rbac.authorization.k8s.io/v1 RoleBinding":
		v := &rbacv1.RoleBinding{}
		m.RoleBindings, o.Value = append(m.RoleBindings, v), v
	case "monitoring.coreos.com/v1 ServiceMonitor":
		v := &monitoringv1.ServiceMonitor{}
		m.ServiceMonitors, o.Value = append(m.ServiceMonitors, v), v
	default:
		return o, ErrUnknownKind
	}
	return o, nil
}

// objectMeta returns the metadata of a typed object Decode made.
func objectMeta(v any) *metav1.ObjectMeta {
	return v.(interface{ GetObjectMeta() metav1.Object }).GetObjectMeta().(*metav1.ObjectMeta)
}

func stripComments(doc string) string {
	var b strings.Builder
	for l := range strings.Lines(doc) {
		if !strings.HasPrefix(strings.TrimSpace(l), "#") {
			b.WriteString(l)
		}
	}
	return b.String()
}

// Workload is a pod template and what runs it.
type Workload struct {
	Kind, Name string
	Replicas   int32
	// ServiceName is a StatefulSet's governing Service.
	ServiceName string
	Pod         *corev1.PodTemplateSpec
}

// PodNames returns the names the workload's pods get where they are
// fixed (a StatefulSet's name-0, name-1, ...); for a Deployment or Job,
// one made-up name per replica, as the kubelet would see a random suffix.
func (w Workload) PodNames() []string {
	var names []string
	for i := range int(w.Replicas) {
		if w.Kind == "StatefulSet" {
			names = append(names, fmt.Sprintf("%s-%d", w.Name, i))
		} else {
			names = append(names, fmt.Sprintf("%s-7d9c5b6f4-%05d", w.Name, i))
		}
	}
	return names
}

// Workloads returns every Deployment, StatefulSet and Job.
func (m *Manifest) Workloads() []Workload {
	var ws []Workload
	for _, d := range m.Deployments {
		ws = append(ws, Workload{Kind: "Deployment", Name: d.Name, Replicas: replicas(d.Spec.Replicas), Pod: &d.Spec.Template})
	}
	for _, s := range m.StatefulSets {
		ws = append(ws, Workload{Kind: "StatefulSet", Name: s.Name, Replicas: replicas(s.Spec.Replicas), ServiceName: s.Spec.ServiceName, Pod: &s.Spec.Template})
	}
	for _, j := range m.Jobs {
		ws = append(ws, Workload{Kind: "Job", Name: j.Name, Replicas: 1, Pod: &j.Spec.Template})
	}
	return ws
}

// replicas is a workload's replica count, 1 when unset (the API's default).
func replicas(r *int32) int32 {
	if r == nil {
		return 1
	}
	return *r
}

// Containers returns the workloads running a container of that name,
// with the container.
func (m *Manifest) Containers(name string) []WorkloadContainer {
	var out []WorkloadContainer
	for _, w := range m.Workloads() {
		for i := range w.Pod.Spec.Containers {
			if w.Pod.Spec.Containers[i].Name == name {
				out = append(out, WorkloadContainer{Workload: w, Container: &w.Pod.Spec.Containers[i]})
			}
		}
	}
	return out
}

// WorkloadContainer is a container and the workload it runs in.
type WorkloadContainer struct {
	Workload
	Container *corev1.Container
}

// Service returns the Service of that name, or nil.
func (m *Manifest) Service(name string) *corev1.Service {
	for _, s := range m.Services {
		if s.Name == name {
			return s
		}
	}
	return nil
}

// Selects reports whether a Service's selector matches the pod labels.
func Selects(selector, labels map[string]string) bool {
	if len(selector) == 0 {
		return false
	}
	for k, v := range selector {
		if labels[k] != v {
			return false
		}
	}
	return true
}

// ContainerPort resolves a probe's or Service's target port (a name or a
// number) among the container's ports.
func ContainerPort(c *corev1.Container, name string, number int32) (corev1.ContainerPort, bool) {
	for _, p := range c.Ports {
		if (name != "" && p.Name == name) || (name == "" && p.ContainerPort == number) {
			return p, true
		}
	}
	return corev1.ContainerPort{}, false
}

// SecretValue returns what the test takes a Secret's key to hold, for the
// environment variable env: a ClickHouse DSN, a password or a token.
type SecretValue func(env, secret, key string) string

// PlaceholderSecret is a SecretValue: a DSN with a password for
// CARTOGRAPH_CLICKHOUSE_DSN, and a 32-character token for anything else
// (which passes as a password too).
func PlaceholderSecret(env, _, _ string) string {
	if env == "CARTOGRAPH_CLICKHOUSE_DSN" {
		return "clickhouse://cartograph:" + placeholderToken + "@clickhouse.example:9000/cartograph"
	}
	return placeholderToken
}

const placeholderToken = "0123456789abcdef0123456789abcdef"

// PlaceholderTokens is a token file's content (`name:secret`) that
// PlaceholderSecret's token fits.
const PlaceholderTokens = "chart-test:" + placeholderToken + "\n"

// Env returns the container's environment as the kubelet builds it in
// the pod podName: literal values with $(VAR) references to the
// variables before them expanded, the pod's name from the downward API,
// and Secret keys from secret. A reference it cannot resolve (another
// downward field, a ConfigMap) is an error: the tests would not know the
// value.
func Env(c *corev1.Container, podName string, secret SecretValue) (map[string]string, error) {
	env := map[string]string{}
	for _, e := range c.Env {
		switch {
		case e.ValueFrom == nil:
			env[e.Name] = Expand(e.Value, env)
		case e.ValueFrom.SecretKeyRef != nil:
			env[e.Name] = secret(e.Name, e.ValueFrom.SecretKeyRef.Name, e.ValueFrom.SecretKeyRef.Key)
		case e.ValueFrom.FieldRef != nil && e.ValueFrom.FieldRef.FieldPath == "metadata.name":
			env[e.Name] = podName
		default:
			return nil, fmt.Errorf("env %s: a source the tests cannot resolve: %+v", e.Name, e.ValueFrom)
		}
	}
	return env, nil
}

// reference is a $(VAR) reference, or the $$ escape.
var reference = regexp.MustCompile(`\$\$|\$\(([A-Za-z_][A-Za-z0-9_.-]*)\)`)

// Expand replaces $(VAR) in s with env's VAR, as the kubelet does in
// args, command and env values: an unknown reference stays as it is, and
// $$ is a literal $.
func Expand(s string, env map[string]string) string {
	return reference.ReplaceAllStringFunc(s, func(m string) string {
		if m == "$$" {
			return "$"
		}
		if v, ok := env[m[2:len(m)-1]]; ok {
			return v
		}
		return m
	})
}

// Mounts maps paths inside a container to files a test can read: every
// key a Secret volume mounts (with explicit items) becomes a file under a
// temporary directory, holding PlaceholderTokens.
type Mounts struct {
	// Files maps a path in the container to its file on this machine.
	Files map[string]string
	// Secrets maps a path in the container to "secret/key".
	Secrets map[string]string
	// Dirs are the mount paths of every volume.
	Dirs []string
}

// MountSecrets writes the files of the container's Secret volumes under
// dir. A Secret volume without items is an error: the chart names the
// keys it mounts, so that a test can check them.
func MountSecrets(pod *corev1.PodSpec, c *corev1.Container, dir string) (Mounts, error) {
	mo := Mounts{Files: map[string]string{}, Secrets: map[string]string{}}
	volumes := map[string]corev1.Volume{}
	for _, v := range pod.Volumes {
		volumes[v.Name] = v
	}
	for _, vm := range c.VolumeMounts {
		v, ok := volumes[vm.Name]
		if !ok {
			return mo, fmt.Errorf("container %s mounts volume %q, which the pod does not have", c.Name, vm.Name)
		}
		mo.Dirs = append(mo.Dirs, vm.MountPath)
		if v.Secret == nil {
			continue
		}
		if len(v.Secret.Items) == 0 {
			return mo, fmt.Errorf("volume %s mounts every key of Secret %s: name the keys (items)", v.Name, v.Secret.SecretName)
		}
		for _, it := range v.Secret.Items {
			inPod := filepath.Join(vm.MountPath, it.Path)
			local := filepath.Join(dir, vm.Name, it.Path)
			if err := os.MkdirAll(filepath.Dir(local), 0o700); err != nil {
				return mo, err
			}
			if err := os.WriteFile(local, []byte(PlaceholderTokens), 0o600); err != nil {
				return mo, err
			}
			mo.Files[inPod] = local
			mo.Secrets[inPod] = v.Secret.SecretName + "/" + it.Key
		}
	}
	sort.Strings(mo.Dirs)
	return mo, nil
}

// Under reports whether path is in one of the mounted directories.
func (mo Mounts) Under(path string) bool {
	return slices.ContainsFunc(mo.Dirs, func(d string) bool { return path == d || strings.HasPrefix(path, d+"/") })
}

// Flag is one --name=value argument.
type Flag struct{ Name, Value string }

// flagArg is the only form the chart writes flags in.
var flagArg = regexp.MustCompile(`^--([a-z0-9]+(?:-[a-z0-9]+)*)=(.*)$`)

// ParseFlags splits args written as --name=value, the one form the chart
// uses; anything else, and a flag given twice, is an error.
func ParseFlags(args []string) ([]Flag, error) {
	var out []Flag
	seen := map[string]bool{}
	for _, a := range args {
		m := flagArg.FindStringSubmatch(a)
		if m == nil {
			return nil, fmt.Errorf("argument %q is not --name=value", a)
		}
		if seen[m[1]] {
			return nil, fmt.Errorf("--%s given twice", m[1])
		}
		seen[m[1]] = true
		out = append(out, Flag{Name: m[1], Value: m[2]})
	}
	return out, nil
}
