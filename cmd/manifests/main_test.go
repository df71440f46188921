package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	policyv1 "k8s.io/api/policy/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/apimachinery/pkg/util/intstr"
	"k8s.io/apimachinery/pkg/util/validation"
	"sigs.k8s.io/yaml"

	"github.com/platform/tenant-registry/internal/config"
)

const (
	testTag    = "v9.8.7"
	secretName = "tenant-registry"
	serverImg  = "tenant-registry:" + testTag
	migrateImg = "tenant-registry-migrate:" + testTag
)

// secretEnv are the variables that must come from the Secret, by key.
var secretEnv = map[string]string{
	"DATABASE_URL":           "database-url",
	"DATABASE_LISTEN_URL":    "database-direct-url",
	"API_KEY_SECRET":         "api-key-secret",
	"KEYCLOAK_CLIENT_SECRET": "keycloak-client-secret",
	"IDP_SECRET_KEY":         "idp-secret-key",
}

// rendered is the output, decoded.
type rendered struct {
	text        string
	deployment  *appsv1.Deployment
	service     *corev1.Service
	pdb         *policyv1.PodDisruptionBudget
	configMap   *corev1.ConfigMap
	account     *corev1.ServiceAccount
	kinds       []string
	objectMetas []metav1.ObjectMeta
}

// render runs the command on deploy/k8s and decodes every document
// strictly into its k8s.io/api type.
func renderDeploy(t *testing.T) rendered {
	t.Helper()
	out := filepath.Join(t.TempDir(), "tenant-registry.yaml")
	var stdout bytes.Buffer
	if err := run(context.Background(), []string{"-dir", "../../deploy/k8s", "-tag", testTag, "-out", out}, &stdout); err != nil {
		t.Fatalf("run: %v", err)
	}
	b, err := os.ReadFile(out)
	if err != nil {
		t.Fatal(err)
	}
	r := rendered{text: string(b)}
	for i, doc := range regexp.MustCompile(`(?m)^---$`).Split(r.text, -1) {
		if strings.TrimSpace(doc) == "" {
			t.Fatalf("document %d is empty", i)
		}
		j, err := yaml.YAMLToJSONStrict([]byte(doc))
		if err != nil {
			t.Fatalf("document %d: %v", i, err)
		}
		var tm metav1.TypeMeta
		if err := json.Unmarshal(j, &tm); err != nil {
			t.Fatalf("document %d: %v", i, err)
		}
		var obj any
		switch gvk := tm.APIVersion + " " + tm.Kind; gvk {
		case "apps/v1 Deployment":
			r.deployment = once(t, r.deployment, gvk)
			obj = r.deployment
		case "v1 Service":
			r.service = once(t, r.service, gvk)
			obj = r.service
		case "policy/v1 PodDisruptionBudget":
			r.pdb = once(t, r.pdb, gvk)
			obj = r.pdb
		case "v1 ConfigMap":
			r.configMap = once(t, r.configMap, gvk)
			obj = r.configMap
		case "v1 ServiceAccount":
			r.account = once(t, r.account, gvk)
			obj = r.account
		default:
			t.Fatalf("document %d: unexpected %q (a Secret, too, is the operator's)", i, gvk)
		}
		dec := json.NewDecoder(bytes.NewReader(j))
		dec.DisallowUnknownFields()
		if err := dec.Decode(obj); err != nil {
			t.Fatalf("document %d (%s): %v", i, tm.Kind, err)
		}
		r.kinds = append(r.kinds, tm.Kind)
	}
	for _, m := range []metav1.ObjectMeta{r.deployment.ObjectMeta, r.service.ObjectMeta, r.pdb.ObjectMeta, r.configMap.ObjectMeta, r.account.ObjectMeta} {
		r.objectMetas = append(r.objectMetas, m)
	}
	return r
}

// once allocates the object of a kind, refusing a second one.
func once[T any](t *testing.T, p *T, gvk string) *T {
	t.Helper()
	if p != nil {
		t.Fatalf("two documents of %s", gvk)
	}
	return new(T)
}

func TestRenderedKinds(t *testing.T) {
	r := renderDeploy(t)
	got := slices.Sorted(slices.Values(r.kinds))
	want := []string{"ConfigMap", "Deployment", "PodDisruptionBudget", "Service", "ServiceAccount"}
	if !slices.Equal(got, want) {
		t.Errorf("kinds = %v, want %v", got, want)
	}
	if strings.Contains(r.text, "kind: Secret") {
		t.Error("the output holds a Secret")
	}
	for _, m := range r.objectMetas {
		if errs := validation.IsDNS1123Label(m.Name); len(errs) > 0 {
			t.Errorf("name %q: %v", m.Name, errs)
		}
		checkLabels(t, m.Name, m.Labels)
		if got, want := m.Labels["app.kubernetes.io/part-of"], "platform"; got != want {
			t.Errorf("%s: label part-of = %q, want %q", m.Name, got, want)
		}
	}
}

func checkLabels(t *testing.T, where string, l map[string]string) {
	t.Helper()
	for k, v := range l {
		if errs := validation.IsQualifiedName(k); len(errs) > 0 {
			t.Errorf("%s: label key %q: %v", where, k, errs)
		}
		if errs := validation.IsValidLabelValue(v); len(errs) > 0 {
			t.Errorf("%s: label %s value %q: %v", where, k, v, errs)
		}
	}
}

func TestDeployment(t *testing.T) {
	r := renderDeploy(t)
	d := r.deployment
	pod := d.Spec.Template.Spec
	if d.Spec.Replicas == nil || *d.Spec.Replicas < 2 {
		t.Errorf("replicas = %v, want at least 2", d.Spec.Replicas)
	}
	sel, err := metav1.LabelSelectorAsSelector(d.Spec.Selector)
	if err != nil || sel.Empty() || !sel.Matches(labels.Set(d.Spec.Template.Labels)) {
		t.Errorf("selector %v (%v) does not match the pod labels %v", d.Spec.Selector, err, d.Spec.Template.Labels)
	}
	checkLabels(t, "pod template", d.Spec.Template.Labels)
	if got, want := pod.ServiceAccountName, r.account.Name; got != want {
		t.Errorf("serviceAccountName = %q, want %q", got, want)
	}

	// Init container: migrate up, on its own image.
	if got, want := len(pod.InitContainers), 1; got != want {
		t.Fatalf("%d init containers, want %d", got, want)
	}
	mig := pod.InitContainers[0]
	for _, c := range []struct {
		name      string
		got, want string
	}{
		{"init image", mig.Image, migrateImg},
		{"init command", strings.Join(append(mig.Command, mig.Args...), " "), "up"},
		{"server image", container(t, pod).Image, serverImg},
	} {
		if c.got != c.want {
			t.Errorf("%s = %q, want %q", c.name, c.got, c.want)
		}
	}
	if v := envVar(mig.Env, "DATABASE_URL"); v == nil || v.ValueFrom == nil || v.ValueFrom.SecretKeyRef == nil || v.ValueFrom.SecretKeyRef.Key != "database-direct-url" {
		t.Errorf("migrate's DATABASE_URL = %+v, want the Secret's direct URL (advisory lock: not through PgBouncer)", v)
	}

	// Security, resources and names of every container.
	if sc := pod.SecurityContext; sc == nil || sc.RunAsNonRoot == nil || !*sc.RunAsNonRoot || sc.RunAsUser == nil || *sc.RunAsUser != 65532 {
		t.Errorf("pod securityContext = %+v, want runAsNonRoot and runAsUser 65532", sc)
	}
	for _, c := range slices.Concat(pod.InitContainers, pod.Containers) {
		if errs := validation.IsDNS1123Label(c.Name); len(errs) > 0 {
			t.Errorf("container name %q: %v", c.Name, errs)
		}
		sc := c.SecurityContext
		if sc == nil {
			t.Errorf("%s: no securityContext", c.Name)
			continue
		}
		for _, p := range []struct {
			name string
			ok   bool
		}{
			{"runAsNonRoot", sc.RunAsNonRoot != nil && *sc.RunAsNonRoot},
			{"runAsUser 65532", sc.RunAsUser != nil && *sc.RunAsUser == 65532},
			{"readOnlyRootFilesystem", sc.ReadOnlyRootFilesystem != nil && *sc.ReadOnlyRootFilesystem},
			{"allowPrivilegeEscalation false", sc.AllowPrivilegeEscalation != nil && !*sc.AllowPrivilegeEscalation},
			{"capabilities drop ALL", sc.Capabilities != nil && slices.Equal(sc.Capabilities.Drop, []corev1.Capability{"ALL"})},
			{"no privileged", sc.Privileged == nil || !*sc.Privileged},
			{"cpu request", !c.Resources.Requests.Cpu().IsZero()},
			{"memory request", !c.Resources.Requests.Memory().IsZero()},
			{"memory limit", !c.Resources.Limits.Memory().IsZero()},
			{"memory request ≤ limit", c.Resources.Requests.Memory().Cmp(*c.Resources.Limits.Memory()) <= 0},
		} {
			if !p.ok {
				t.Errorf("container %s: want %s", c.Name, p.name)
			}
		}
		for _, f := range c.EnvFrom {
			if f.ConfigMapRef == nil || f.ConfigMapRef.Name != r.configMap.Name {
				t.Errorf("container %s: envFrom %+v is not the ConfigMap %s", c.Name, f, r.configMap.Name)
			}
		}
		for _, e := range c.Env {
			if ref := e.ValueFrom; ref != nil && ref.ConfigMapKeyRef != nil {
				if _, ok := r.configMap.Data[ref.ConfigMapKeyRef.Key]; ref.ConfigMapKeyRef.Name != r.configMap.Name || !ok {
					t.Errorf("container %s: %s from ConfigMap %s key %s, which is not in the output", c.Name, e.Name, ref.ConfigMapKeyRef.Name, ref.ConfigMapKeyRef.Key)
				}
			}
		}
	}
	for _, v := range pod.Volumes {
		if errs := validation.IsDNS1123Label(v.Name); len(errs) > 0 {
			t.Errorf("volume name %q: %v", v.Name, errs)
		}
	}
}

func TestProbesAndPorts(t *testing.T) {
	r := renderDeploy(t)
	c := container(t, r.deployment.Spec.Template.Spec)
	if got, want := len(c.Ports), 1; got != want {
		t.Fatalf("%d ports, want %d", got, want)
	}
	port := c.Ports[0]
	if errs := validation.IsValidPortName(port.Name); len(errs) > 0 {
		t.Errorf("port name %q: %v", port.Name, errs)
	}
	if got, want := port.ContainerPort, int32(8080); got != want {
		t.Errorf("containerPort = %d, want %d", got, want)
	}
	// ADDR (from the ConfigMap) is where the server listens.
	if _, p, err := net.SplitHostPort(r.configMap.Data["ADDR"]); err != nil || p != fmt.Sprint(port.ContainerPort) {
		t.Errorf("ADDR = %q, want the container port %d", r.configMap.Data["ADDR"], port.ContainerPort)
	}
	for _, p := range []struct {
		name  string
		probe *corev1.Probe
		path  string
	}{
		{"readiness", c.ReadinessProbe, "/readyz"},
		{"liveness", c.LivenessProbe, "/healthz"},
		{"startup", c.StartupProbe, "/healthz"},
	} {
		if p.probe == nil || p.probe.HTTPGet == nil {
			t.Errorf("%s probe: %+v, want an httpGet", p.name, p.probe)
			continue
		}
		if got := p.probe.HTTPGet.Path; got != p.path {
			t.Errorf("%s probe path = %q, want %q", p.name, got, p.path)
		}
		if got := resolvePort(c, p.probe.HTTPGet.Port); got != port.ContainerPort {
			t.Errorf("%s probe port %s is container port %d, want %d", p.name, p.probe.HTTPGet.Port.String(), got, port.ContainerPort)
		}
	}

	svc := r.service
	if svc.Spec.Selector == nil || !labels.SelectorFromSet(svc.Spec.Selector).Matches(labels.Set(r.deployment.Spec.Template.Labels)) {
		t.Errorf("Service selector %v does not match the pod labels %v", svc.Spec.Selector, r.deployment.Spec.Template.Labels)
	}
	if got, want := len(svc.Spec.Ports), 1; got != want {
		t.Fatalf("Service has %d ports, want %d", got, want)
	}
	sp := svc.Spec.Ports[0]
	if got, want := sp.Port, int32(80); got != want {
		t.Errorf("Service port = %d, want %d", got, want)
	}
	if got, want := resolvePort(c, sp.TargetPort), port.ContainerPort; got != want {
		t.Errorf("Service targetPort %s is container port %d, want %d", sp.TargetPort.String(), got, want)
	}

	pdb := r.pdb
	sel, err := metav1.LabelSelectorAsSelector(pdb.Spec.Selector)
	if err != nil || sel.Empty() || !sel.Matches(labels.Set(r.deployment.Spec.Template.Labels)) {
		t.Errorf("PDB selector %v (%v) does not match the pod labels", pdb.Spec.Selector, err)
	}
	switch replicas := int(*r.deployment.Spec.Replicas); {
	case pdb.Spec.MaxUnavailable != nil:
		if n := pdb.Spec.MaxUnavailable.IntValue(); n < 1 || replicas-n < 1 {
			t.Errorf("PDB maxUnavailable %s with %d replicas, want 1 ≤ it < replicas", pdb.Spec.MaxUnavailable.String(), replicas)
		}
	case pdb.Spec.MinAvailable != nil:
		if n := pdb.Spec.MinAvailable.IntValue(); n < 1 || n >= replicas {
			t.Errorf("PDB minAvailable %s with %d replicas, want 1 ≤ it < replicas", pdb.Spec.MinAvailable.String(), replicas)
		}
	default:
		t.Error("PDB sets neither minAvailable nor maxUnavailable")
	}
}

// TestShutdownBudget: the kubelet's SIGKILL comes after the drain.
func TestShutdownBudget(t *testing.T) {
	r := renderDeploy(t)
	var sum time.Duration
	for _, v := range []string{"SHUTDOWN_DELAY", "SHUTDOWN_TIMEOUT"} {
		d, err := time.ParseDuration(r.configMap.Data[v])
		if err != nil {
			t.Fatalf("ConfigMap %s = %q: %v", v, r.configMap.Data[v], err)
		}
		sum += d
	}
	g := r.deployment.Spec.Template.Spec.TerminationGracePeriodSeconds
	if g == nil {
		t.Fatal("no terminationGracePeriodSeconds")
	}
	if got := time.Duration(*g) * time.Second; got <= sum {
		t.Errorf("terminationGracePeriodSeconds = %v, want more than SHUTDOWN_DELAY + SHUTDOWN_TIMEOUT = %v", got, sum)
	}
}

func TestSecrets(t *testing.T) {
	r := renderDeploy(t)
	pod := r.deployment.Spec.Template.Spec
	c := container(t, pod)
	for name, key := range secretEnv {
		t.Run(name, func(t *testing.T) {
			v := envVar(c.Env, name)
			if v == nil || v.ValueFrom == nil || v.ValueFrom.SecretKeyRef == nil {
				t.Fatalf("server env %s = %+v, want a secretKeyRef", name, v)
			}
			if got, want := v.ValueFrom.SecretKeyRef.Name+"/"+v.ValueFrom.SecretKeyRef.Key, secretName+"/"+key; got != want {
				t.Errorf("%s from %s, want %s", name, got, want)
			}
			if _, ok := r.configMap.Data[name]; ok {
				t.Errorf("the ConfigMap sets %s", name)
			}
			for _, c := range slices.Concat(pod.InitContainers, pod.Containers) {
				if v := envVar(c.Env, name); v != nil && (v.Value != "" || v.ValueFrom == nil || v.ValueFrom.SecretKeyRef == nil) {
					t.Errorf("container %s: %s is not a secretKeyRef: %+v", c.Name, name, v)
				}
			}
		})
	}
	for _, lit := range []string{"postgres://", "postgresql://", config.DevAPIKeySecret, "stringData"} {
		if strings.Contains(r.text, lit) {
			t.Errorf("the output holds %q", lit)
		}
	}

	// The audit signing key: a read-only Secret volume, the file it names.
	file := envVar(c.Env, "AUDIT_SIGNING_KEY_FILE")
	if file == nil || !strings.HasPrefix(file.Value, "/") {
		t.Fatalf("AUDIT_SIGNING_KEY_FILE = %+v, want an absolute path", file)
	}
	var mounted bool
	for _, m := range c.VolumeMounts {
		if !strings.HasPrefix(file.Value, m.MountPath+"/") {
			continue
		}
		mounted = true
		if !m.ReadOnly {
			t.Errorf("mount %s is writable", m.MountPath)
		}
		i := slices.IndexFunc(pod.Volumes, func(v corev1.Volume) bool { return v.Name == m.Name })
		if i < 0 || pod.Volumes[i].Secret == nil || pod.Volumes[i].Secret.SecretName != secretName {
			t.Fatalf("volume %s is not the Secret %s", m.Name, secretName)
		}
		s := pod.Volumes[i].Secret
		want := corev1.KeyToPath{Key: "audit-signing-key", Path: strings.TrimPrefix(file.Value, m.MountPath+"/")}
		if len(s.Items) != 1 || s.Items[0] != want {
			t.Errorf("secret volume items = %+v, want %+v", s.Items, want)
		}
		if s.DefaultMode == nil || *s.DefaultMode&0o007 != 0 {
			t.Errorf("secret volume mode %v is readable by others", s.DefaultMode)
		}
	}
	if !mounted {
		t.Errorf("no volume is mounted at %s", file.Value)
	}
}

// TestConfigLoads: the server's environment as the pod gets it (ConfigMap,
// env, secrets stood in for) is a configuration config.Load accepts in
// APP_ENV=prod, with no variable it does not expect.
func TestConfigLoads(t *testing.T) {
	r := renderDeploy(t)
	c := container(t, r.deployment.Spec.Template.Spec)
	env := map[string]string{}
	for k, v := range r.configMap.Data {
		env[k] = v
	}
	stand := map[string]string{
		"database-url":           "postgres://app@pgbouncer:6432/registry",
		"database-direct-url":    "postgres://app@postgres:5432/registry",
		"api-key-secret":         strings.Repeat("k", 48),
		"keycloak-client-secret": "client-secret",
		"idp-secret-key":         "cHJvZHVjdGlvbi1pZHAta2V5LWZvci10aGUtdGVzdHM=",
	}
	for _, e := range c.Env {
		switch {
		case e.ValueFrom != nil && e.ValueFrom.SecretKeyRef != nil:
			env[e.Name] = stand[e.ValueFrom.SecretKeyRef.Key]
		default:
			env[e.Name] = e.Value
		}
	}
	if got, want := env["APP_ENV"], config.Prod; got != want {
		t.Errorf("APP_ENV = %q, want %q", got, want)
	}
	cfg, err := config.Load(func(k string) string { return env[k] })
	if err != nil {
		t.Fatalf("config.Load of the pod's environment: %v", err)
	}
	if got, want := cfg.DatabaseListenURL, stand["database-direct-url"]; got != want {
		t.Errorf("DatabaseListenURL = %q, want %q", got, want)
	}
	// Every variable set is one the deployment means to set: read by the
	// service, or by an issue on its way (IDP_SECRET_KEY, …), and none of
	// the dev-only ones (SQLITE_PATH, …).
	known := regexp.MustCompile(`^(APP_ENV|ADDR|DATABASE_URL|DATABASE_LISTEN_URL|DB_MAX_CONNS|LOG_LEVEL|KEYCLOAK_(ISSUER|AUDIENCE|ADMIN_URL|REALM|CLIENT_ID|CLIENT_SECRET|INVITE_URL|ORG_DOMAIN_SUFFIX)|API_KEY_SECRET|CATALOG_FILE|CORS_ALLOWED_ORIGINS|SWEEP_INTERVAL|RETENTION_DAYS|SHUTDOWN_(DELAY|TIMEOUT)|RPC_TIMEOUT|OTEL_[A-Z_]+|IDP_SECRET_KEY|AUDIT_SIGNING_KEY_FILE)$`)
	for k := range env {
		if !known.MatchString(k) {
			t.Errorf("the pod sets %s, not one of the variables a deployment sets", k)
		}
	}
}

func container(t *testing.T, pod corev1.PodSpec) corev1.Container {
	t.Helper()
	if len(pod.Containers) != 1 {
		t.Fatalf("%d containers, want 1", len(pod.Containers))
	}
	return pod.Containers[0]
}

func envVar(env []corev1.EnvVar, name string) *corev1.EnvVar {
	for i := range env {
		if env[i].Name == name {
			return &env[i]
		}
	}
	return nil
}

// resolvePort answers the container port a probe's or Service's port names.
func resolvePort(c corev1.Container, p intstr.IntOrString) int32 {
	if p.Type == intstr.Int {
		return p.IntVal
	}
	for _, cp := range c.Ports {
		if cp.Name == p.StrVal {
			return cp.ContainerPort
		}
	}
	return -1
}
