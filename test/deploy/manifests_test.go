// Package deploy_test checks deploy/: every Kubernetes manifest decodes strictly into its typed
// object, the kustomization and the files agree, names cross-reference, nats.conf runs on a real
// nats-server with the permissions the services need, and the Prometheus and Grafana files use
// only known metrics.
package deploy_test

import (
	"bytes"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"sort"
	"strings"
	"testing"

	appsv1 "k8s.io/api/apps/v1"
	autoscalingv2 "k8s.io/api/autoscaling/v2"
	corev1 "k8s.io/api/core/v1"
	networkingv1 "k8s.io/api/networking/v1"
	policyv1 "k8s.io/api/policy/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/intstr"
	"sigs.k8s.io/yaml"

	"github.com/openagents/runtime/pkg/contracts"
)

const (
	repoRoot  = "../.."
	k8sDir    = repoRoot + "/deploy/k8s"
	namespace = "openagents"
)

// Files under deploy/k8s that are deliberately not in the kustomization.
var notApplied = []string{"secrets/", "alternatives/"}

// ScaledObject is the part of KEDA's keda.sh/v1alpha1 ScaledObject these manifests use; decoding
// is strict, so a field outside it (a typo included) fails the test.
type ScaledObject struct {
	metav1.TypeMeta   `json:",inline"`
	metav1.ObjectMeta `json:"metadata"`
	Spec              struct {
		ScaleTargetRef struct {
			APIVersion string `json:"apiVersion,omitempty"`
			Kind       string `json:"kind,omitempty"`
			Name       string `json:"name"`
		} `json:"scaleTargetRef"`
		PollingInterval *int32 `json:"pollingInterval,omitempty"`
		CooldownPeriod  *int32 `json:"cooldownPeriod,omitempty"`
		MinReplicaCount *int32 `json:"minReplicaCount,omitempty"`
		MaxReplicaCount *int32 `json:"maxReplicaCount,omitempty"`
		Fallback        *struct {
			FailureThreshold int32 `json:"failureThreshold"`
			Replicas         int32 `json:"replicas"`
		} `json:"fallback,omitempty"`
		Advanced *struct {
			HorizontalPodAutoscalerConfig *struct {
				Behavior *autoscalingv2.HorizontalPodAutoscalerBehavior `json:"behavior,omitempty"`
			} `json:"horizontalPodAutoscalerConfig,omitempty"`
		} `json:"advanced,omitempty"`
		Triggers []struct {
			Type     string            `json:"type"`
			Metadata map[string]string `json:"metadata"`
		} `json:"triggers"`
	} `json:"spec"`
}

// Kustomization is the part of kustomize's Kustomization used here (strict as well).
type Kustomization struct {
	APIVersion string   `json:"apiVersion"`
	Kind       string   `json:"kind"`
	Namespace  string   `json:"namespace,omitempty"`
	Resources  []string `json:"resources"`
	Images     []struct {
		Name    string `json:"name"`
		NewName string `json:"newName,omitempty"`
		NewTag  string `json:"newTag,omitempty"`
	} `json:"images,omitempty"`
}

// object is one decoded manifest document.
type object struct {
	File string // relative to deploy/k8s
	Kind string
	Name string
	Obj  any
}

func (o object) String() string { return fmt.Sprintf("%s %s/%s", o.File, o.Kind, o.Name) }

var newObject = map[string]func() any{
	"v1/Namespace":                       func() any { return &corev1.Namespace{} },
	"v1/ConfigMap":                       func() any { return &corev1.ConfigMap{} },
	"v1/Secret":                          func() any { return &corev1.Secret{} },
	"v1/Service":                         func() any { return &corev1.Service{} },
	"v1/ServiceAccount":                  func() any { return &corev1.ServiceAccount{} },
	"apps/v1/Deployment":                 func() any { return &appsv1.Deployment{} },
	"apps/v1/StatefulSet":                func() any { return &appsv1.StatefulSet{} },
	"policy/v1/PodDisruptionBudget":      func() any { return &policyv1.PodDisruptionBudget{} },
	"networking.k8s.io/v1/NetworkPolicy": func() any { return &networkingv1.NetworkPolicy{} },
	"autoscaling/v2/HorizontalPodAutoscaler": func() any {
		return &autoscalingv2.HorizontalPodAutoscaler{}
	},
	"keda.sh/v1alpha1/ScaledObject": func() any { return &ScaledObject{} },
}

var docSep = regexp.MustCompile(`(?m)^---[ \t]*$`)

// decodeFile strictly decodes every document of one manifest file.
func decodeFile(rel string, data []byte) ([]object, error) {
	var out []object
	for i, doc := range docSep.Split(string(data), -1) {
		if strings.TrimSpace(stripComments(doc)) == "" {
			continue
		}
		var tm metav1.TypeMeta
		if err := yaml.Unmarshal([]byte(doc), &tm); err != nil {
			return nil, fmt.Errorf("%s doc %d: %w", rel, i, err)
		}
		mk, ok := newObject[tm.APIVersion+"/"+tm.Kind]
		if !ok {
			return nil, fmt.Errorf("%s doc %d: no Go type for %s %s", rel, i, tm.APIVersion, tm.Kind)
		}
		obj := mk()
		if err := yaml.UnmarshalStrict([]byte(doc), obj); err != nil {
			return nil, fmt.Errorf("%s doc %d (%s): strict decode: %w", rel, i, tm.Kind, err)
		}
		name := metaOf(obj).Name
		if name == "" {
			return nil, fmt.Errorf("%s doc %d (%s): no metadata.name", rel, i, tm.Kind)
		}
		out = append(out, object{File: rel, Kind: tm.Kind, Name: name, Obj: obj})
	}
	return out, nil
}

func stripComments(doc string) string {
	var b strings.Builder
	for _, l := range strings.Split(doc, "\n") {
		if !strings.HasPrefix(strings.TrimSpace(l), "#") {
			b.WriteString(l + "\n")
		}
	}
	return b.String()
}

func metaOf(obj any) *metav1.ObjectMeta {
	type hasMeta interface{ GetObjectMeta() metav1.Object }
	if so, ok := obj.(*ScaledObject); ok {
		return &so.ObjectMeta
	}
	m := obj.(hasMeta).GetObjectMeta()
	return m.(*metav1.ObjectMeta)
}

// manifestFiles lists deploy/k8s/**.yaml relative to deploy/k8s, except the kustomization.
func manifestFiles(t *testing.T) []string {
	t.Helper()
	var files []string
	err := filepath.WalkDir(k8sDir, func(p string, d os.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		rel, _ := filepath.Rel(k8sDir, p)
		if (strings.HasSuffix(p, ".yaml") || strings.HasSuffix(p, ".yml")) && rel != "kustomization.yaml" {
			files = append(files, filepath.ToSlash(rel))
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	sort.Strings(files)
	return files
}

func loadAll(t *testing.T) []object {
	t.Helper()
	var all []object
	for _, rel := range manifestFiles(t) {
		data, err := os.ReadFile(filepath.Join(k8sDir, rel))
		if err != nil {
			t.Fatal(err)
		}
		objs, err := decodeFile(rel, data)
		if err != nil {
			t.Fatal(err)
		}
		if len(objs) == 0 {
			t.Fatalf("%s: no manifests", rel)
		}
		all = append(all, objs...)
	}
	return all
}

func loadKustomization(t *testing.T) Kustomization {
	t.Helper()
	data, err := os.ReadFile(filepath.Join(k8sDir, "kustomization.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	var k Kustomization
	if err := yaml.UnmarshalStrict(data, &k); err != nil {
		t.Fatalf("kustomization.yaml: %v", err)
	}
	return k
}

func isNotApplied(rel string) bool {
	for _, p := range notApplied {
		if strings.HasPrefix(rel, p) {
			return true
		}
	}
	return false
}

func TestManifestsDecodeStrictly(t *testing.T) {
	all := loadAll(t)
	kinds := map[string]int{}
	seen := map[string]string{}
	for _, o := range all {
		kinds[o.Kind]++
		m := metaOf(o.Obj)
		if o.Kind != "Namespace" && m.Namespace != namespace {
			t.Errorf("%s: namespace %q, want %q", o, m.Namespace, namespace)
		}
		if m.Labels["app.kubernetes.io/part-of"] != "openagents" {
			t.Errorf("%s: missing label app.kubernetes.io/part-of=openagents", o)
		}
		key := o.Kind + "/" + o.Name
		if prev, dup := seen[key]; dup && !isNotApplied(o.File) && !isNotApplied(prev) {
			t.Errorf("%s defined twice (%s and %s)", key, prev, o.File)
		}
		seen[key] = o.File
	}
	for kind, want := range map[string]int{"Deployment": 4, "StatefulSet": 1, "PodDisruptionBudget": 5,
		"ServiceAccount": 5, "ScaledObject": 1, "Secret": 3, "Namespace": 1} {
		if kinds[kind] != want {
			t.Errorf("%d %s manifests, want %d", kinds[kind], kind, want)
		}
	}
	// A typo'd field must fail: prove decoding is strict.
	bad := "apiVersion: apps/v1\nkind: Deployment\nmetadata:\n  name: x\nspec:\n  replica: 2\n"
	if _, err := decodeFile("bad.yaml", []byte(bad)); err == nil || !strings.Contains(err.Error(), "replica") {
		t.Errorf("unknown field not rejected: %v", err)
	}
	badSO := "apiVersion: keda.sh/v1alpha1\nkind: ScaledObject\nmetadata:\n  name: x\nspec:\n  scaleTargetRef:\n    name: y\n  cooldownPerod: 3\n"
	if _, err := decodeFile("bad.yaml", []byte(badSO)); err == nil {
		t.Error("unknown ScaledObject field not rejected")
	}
}

func TestKustomizationListsEveryFile(t *testing.T) {
	k := loadKustomization(t)
	if k.APIVersion != "kustomize.config.k8s.io/v1beta1" || k.Kind != "Kustomization" || k.Namespace != namespace {
		t.Errorf("kustomization header: %s %s namespace %q", k.APIVersion, k.Kind, k.Namespace)
	}
	listed := map[string]bool{}
	for _, r := range k.Resources {
		if listed[r] {
			t.Errorf("resource %s listed twice", r)
		}
		listed[r] = true
		if _, err := os.Stat(filepath.Join(k8sDir, r)); err != nil {
			t.Errorf("kustomization lists %s: %v", r, err)
		}
		if isNotApplied(r) {
			t.Errorf("kustomization lists %s, which must never be applied by -k", r)
		}
	}
	for _, f := range manifestFiles(t) {
		if !isNotApplied(f) && !listed[f] {
			t.Errorf("%s is not listed in kustomization.yaml", f)
		}
	}
	// Every image a workload uses has an images: entry, so a release pins them in one place.
	images := map[string]bool{}
	for _, im := range k.Images {
		images[im.Name] = true
	}
	for _, o := range loadAll(t) {
		if d, ok := o.Obj.(*appsv1.Deployment); ok {
			for _, c := range d.Spec.Template.Spec.Containers {
				if name, _, _ := strings.Cut(c.Image, ":"); !images[name] {
					t.Errorf("%s: image %s has no images: entry in kustomization.yaml", o, c.Image)
				}
			}
		}
	}
}

// TestKustomizeBuild renders the kustomization with kubectl's built-in kustomize (offline) when
// kubectl is installed, and checks every listed document comes out.
func TestKustomizeBuild(t *testing.T) {
	kubectl, err := exec.LookPath("kubectl")
	if err != nil {
		skipOrFail(t, "kubectl not installed; kustomize build not checked")
	}
	out, err := exec.Command(kubectl, "kustomize", k8sDir).CombinedOutput()
	if err != nil {
		t.Fatalf("kubectl kustomize: %v\n%s", err, out)
	}
	want := 0
	for _, o := range loadAll(t) {
		if !isNotApplied(o.File) {
			want++
		}
	}
	got := len(regexp.MustCompile(`(?m)^kind: `).FindAll(out, -1))
	if got != want {
		t.Errorf("kustomize rendered %d objects, want %d", got, want)
	}
	if bytes.Contains(out, []byte("kind: Secret")) {
		t.Error("kustomize output contains a Secret: placeholder secrets must not be applied")
	}
}

func TestCrossReferences(t *testing.T) {
	for _, err := range crossCheck(loadAll(t)) {
		t.Error(err)
	}
}

// TestCrossReferencesCatchTypos mutates real manifests and expects crossCheck to object.
func TestCrossReferencesCatchTypos(t *testing.T) {
	cases := []struct{ file, from, to, want string }{
		{"ticker.yaml", "secretName: openagents-kek", "secretName: openagents-kekk", "openagents-kekk"},
		{"payer.yaml", "key: payer-password", "key: payer-pasword", "payer-pasword"},
		{"publisher.yaml", "key: RELAYS", "key: RELAY", "RELAY"},
		{"scheduler.yaml", "serviceAccountName: scheduler", "serviceAccountName: schedular", "schedular"},
		{"ticker.yaml", "path: /readyz\n              port: http", "path: /readyz\n              port: htp", "htp"},
		{"publisher.yaml", "      targetPort: http", "      targetPort: metrics", "metrics"},
		{"payer.yaml", "  minAvailable: 1\n  selector:\n    matchLabels:\n      app.kubernetes.io/name: payer",
			"  minAvailable: 1\n  selector:\n    matchLabels:\n      app.kubernetes.io/name: payr", "payr"},
		{"ticker-scaledobject.yaml", "    name: ticker\n  minReplicaCount", "    name: tickr\n  minReplicaCount", "tickr"},
		{"ticker-scaledobject.yaml", "consumer: ticker", "consumer: tickers", "tickers"},
		{"payer.yaml", "value: /var/run/secrets/openagents/lnd/macaroon", "value: /var/run/secrets/openagents/lnd/admin.macaroon", "admin.macaroon"},
	}
	base := loadAll(t)
	for _, c := range cases {
		t.Run(c.want, func(t *testing.T) {
			data, err := os.ReadFile(filepath.Join(k8sDir, c.file))
			if err != nil {
				t.Fatal(err)
			}
			if !bytes.Contains(data, []byte(c.from)) {
				t.Fatalf("%s does not contain %q", c.file, c.from)
			}
			mutated, err := decodeFile(c.file, bytes.Replace(data, []byte(c.from), []byte(c.to), 1))
			if err != nil {
				t.Fatal(err)
			}
			objs := slices.DeleteFunc(slices.Clone(base), func(o object) bool { return o.File == c.file })
			errs := crossCheck(append(objs, mutated...))
			found := false
			for _, e := range errs {
				found = found || strings.Contains(e.Error(), c.want)
			}
			if !found {
				t.Errorf("typo %q not reported; errors: %v", c.to, errs)
			}
		})
	}
}

type workload struct {
	o         object
	labels    map[string]string
	pod       corev1.PodSpec
	claimVols []string
}

// crossCheck returns every broken reference between the manifests.
func crossCheck(objs []object) []error {
	var errs []error
	fail := func(o object, f string, a ...any) {
		errs = append(errs, fmt.Errorf("%s: "+f, append([]any{o}, a...)...))
	}
	secrets, cms, sas, services := map[string]map[string]bool{}, map[string]map[string]bool{}, map[string]bool{}, map[string]bool{}
	var workloads []workload
	deployments := map[string]bool{}
	for _, o := range objs {
		switch v := o.Obj.(type) {
		case *corev1.Secret:
			keys := map[string]bool{}
			for k := range v.Data {
				keys[k] = true
			}
			for k := range v.StringData {
				keys[k] = true
			}
			secrets[v.Name] = keys
		case *corev1.ConfigMap:
			keys := map[string]bool{}
			for k := range v.Data {
				keys[k] = true
			}
			cms[v.Name] = keys
		case *corev1.ServiceAccount:
			sas[v.Name] = true
		case *corev1.Service:
			services[v.Name] = true
		case *appsv1.Deployment:
			deployments[v.Name] = true
			if !selects(v.Spec.Selector.MatchLabels, v.Spec.Template.Labels) {
				fail(o, "selector does not match its pod labels")
			}
			workloads = append(workloads, workload{o, v.Spec.Template.Labels, v.Spec.Template.Spec, nil})
		case *appsv1.StatefulSet:
			var claims []string
			for _, c := range v.Spec.VolumeClaimTemplates {
				claims = append(claims, c.Name)
			}
			if !selects(v.Spec.Selector.MatchLabels, v.Spec.Template.Labels) {
				fail(o, "selector does not match its pod labels")
			}
			workloads = append(workloads, workload{o, v.Spec.Template.Labels, v.Spec.Template.Spec, claims})
		}
	}
	for _, o := range objs {
		if v, ok := o.Obj.(*appsv1.StatefulSet); ok && !services[v.Spec.ServiceName] {
			fail(o, "serviceName %q: no such Service", v.Spec.ServiceName)
		}
	}
	hasKey := func(m map[string]map[string]bool, name, key string) (bool, bool) {
		keys, ok := m[name]
		return ok, ok && keys[key]
	}
	for _, w := range workloads {
		o, pod := w.o, w.pod
		if pod.ServiceAccountName != "" && !sas[pod.ServiceAccountName] {
			fail(o, "serviceAccountName %q: no such ServiceAccount", pod.ServiceAccountName)
		}
		vols := map[string]corev1.Volume{}
		for _, v := range pod.Volumes {
			vols[v.Name] = v
			switch {
			case v.Secret != nil:
				if _, ok := secrets[v.Secret.SecretName]; !ok {
					fail(o, "volume %s: no Secret %q", v.Name, v.Secret.SecretName)
				}
				for _, it := range v.Secret.Items {
					if _, ok := hasKey(secrets, v.Secret.SecretName, it.Key); !ok {
						fail(o, "volume %s: Secret %q has no key %q", v.Name, v.Secret.SecretName, it.Key)
					}
				}
			case v.ConfigMap != nil:
				if _, ok := cms[v.ConfigMap.Name]; !ok {
					fail(o, "volume %s: no ConfigMap %q", v.Name, v.ConfigMap.Name)
				}
				for _, it := range v.ConfigMap.Items {
					if _, ok := hasKey(cms, v.ConfigMap.Name, it.Key); !ok {
						fail(o, "volume %s: ConfigMap %q has no key %q", v.Name, v.ConfigMap.Name, it.Key)
					}
				}
			}
		}
		for _, c := range append(slices.Clone(pod.InitContainers), pod.Containers...) {
			for _, e := range c.EnvFrom {
				if e.SecretRef != nil {
					if _, ok := secrets[e.SecretRef.Name]; !ok {
						fail(o, "%s envFrom: no Secret %q", c.Name, e.SecretRef.Name)
					}
				}
				if e.ConfigMapRef != nil {
					if _, ok := cms[e.ConfigMapRef.Name]; !ok {
						fail(o, "%s envFrom: no ConfigMap %q", c.Name, e.ConfigMapRef.Name)
					}
				}
			}
			mounts := map[string]corev1.VolumeMount{}
			for _, m := range c.VolumeMounts {
				if _, ok := vols[m.Name]; !ok && !slices.Contains(w.claimVols, m.Name) {
					fail(o, "%s mounts volume %q, which is not defined", c.Name, m.Name)
				}
				mounts[m.MountPath] = m
			}
			for _, e := range c.Env {
				if vf := e.ValueFrom; vf != nil {
					if r := vf.SecretKeyRef; r != nil {
						if exists, key := hasKey(secrets, r.Name, r.Key); !exists {
							fail(o, "%s env %s: no Secret %q", c.Name, e.Name, r.Name)
						} else if !key {
							fail(o, "%s env %s: Secret %q has no key %q", c.Name, e.Name, r.Name, r.Key)
						}
					}
					if r := vf.ConfigMapKeyRef; r != nil {
						if exists, key := hasKey(cms, r.Name, r.Key); !exists {
							fail(o, "%s env %s: no ConfigMap %q", c.Name, e.Name, r.Name)
						} else if !key {
							fail(o, "%s env %s: ConfigMap %q has no key %q", c.Name, e.Name, r.Name, r.Key)
						}
					}
				}
				// *_FILE env values must name a file a mounted Secret provides.
				if strings.HasSuffix(e.Name, "_FILE") && e.Value != "" {
					if err := fileFromSecret(e.Value, mounts, vols, secrets); err != nil {
						fail(o, "%s env %s=%s: %v", c.Name, e.Name, e.Value, err)
					}
				}
			}
			for _, p := range []*corev1.Probe{c.LivenessProbe, c.ReadinessProbe, c.StartupProbe} {
				if p == nil {
					continue
				}
				var port *intstr.IntOrString
				if p.HTTPGet != nil {
					port = &p.HTTPGet.Port
				} else if p.TCPSocket != nil {
					port = &p.TCPSocket.Port
				}
				if port != nil && !containerHasPort(c, *port) {
					fail(o, "%s probe port %s is not a container port", c.Name, port.String())
				}
			}
		}
	}
	matching := func(sel map[string]string) []workload {
		var ws []workload
		for _, w := range workloads {
			if len(sel) > 0 && selects(sel, w.labels) {
				ws = append(ws, w)
			}
		}
		return ws
	}
	for _, o := range objs {
		switch v := o.Obj.(type) {
		case *corev1.Service:
			ws := matching(v.Spec.Selector)
			if len(ws) == 0 {
				fail(o, "selector %v matches no workload", v.Spec.Selector)
				continue
			}
			for _, p := range v.Spec.Ports {
				tp := p.TargetPort
				if tp.Type == intstr.Int && tp.IntVal == 0 {
					tp = intstr.FromInt32(p.Port)
				}
				for _, w := range ws {
					if !podHasPort(w.pod, tp) {
						fail(o, "port %s: targetPort %s is not a container port of %s", p.Name, tp.String(), w.o.Name)
					}
				}
			}
		case *policyv1.PodDisruptionBudget:
			if v.Spec.Selector == nil || len(matching(v.Spec.Selector.MatchLabels)) == 0 {
				fail(o, "selector %v matches no workload", v.Spec.Selector)
			}
		case *networkingv1.NetworkPolicy:
			if len(matching(v.Spec.PodSelector.MatchLabels)) == 0 {
				fail(o, "podSelector %v matches no workload", v.Spec.PodSelector.MatchLabels)
			}
		case *autoscalingv2.HorizontalPodAutoscaler:
			if v.Spec.ScaleTargetRef.Kind != "Deployment" || !deployments[v.Spec.ScaleTargetRef.Name] {
				fail(o, "scaleTargetRef %s/%s: no such Deployment", v.Spec.ScaleTargetRef.Kind, v.Spec.ScaleTargetRef.Name)
			}
		case *ScaledObject:
			ref := v.Spec.ScaleTargetRef
			if (ref.Kind != "" && ref.Kind != "Deployment") || !deployments[ref.Name] {
				fail(o, "scaleTargetRef %s/%s: no such Deployment", ref.Kind, ref.Name)
			}
			found := false
			for _, tr := range v.Spec.Triggers {
				if tr.Type != "nats-jetstream" {
					continue
				}
				found = true
				md := tr.Metadata
				if md["stream"] != contracts.StreamTriggers || md["consumer"] != contracts.ConsumerTicker {
					fail(o, "nats-jetstream trigger watches %s/%s, want %s/%s", md["stream"], md["consumer"],
						contracts.StreamTriggers, contracts.ConsumerTicker)
				}
				host, _, _ := strings.Cut(md["natsServerMonitoringEndpoint"], ":")
				svc, rest, _ := strings.Cut(host, ".")
				if !services[svc] || !strings.HasPrefix(rest, namespace+".svc") {
					fail(o, "natsServerMonitoringEndpoint %q is not a Service in %s", md["natsServerMonitoringEndpoint"], namespace)
				}
				for _, k := range []string{"account", "lagThreshold"} {
					if md[k] == "" {
						fail(o, "nats-jetstream trigger has no %s", k)
					}
				}
			}
			if !found {
				fail(o, "no nats-jetstream trigger")
			}
		}
	}
	return errs
}

// fileFromSecret checks that path is an item of a Secret volume mounted in the container.
func fileFromSecret(path string, mounts map[string]corev1.VolumeMount, vols map[string]corev1.Volume, secrets map[string]map[string]bool) error {
	dir, file := filepath.Split(path)
	m, ok := mounts[strings.TrimSuffix(dir, "/")]
	if !ok {
		return fmt.Errorf("directory %s is not a mount", dir)
	}
	v := vols[m.Name]
	if v.Secret == nil {
		return fmt.Errorf("mount %s is not a Secret volume", m.Name)
	}
	if len(v.Secret.Items) == 0 {
		if _, key := secrets[v.Secret.SecretName][file]; !key {
			return fmt.Errorf("Secret %s has no key %s", v.Secret.SecretName, file)
		}
		return nil
	}
	for _, it := range v.Secret.Items {
		if it.Path == file {
			return nil
		}
	}
	return fmt.Errorf("volume %s does not project %s", m.Name, file)
}

func selects(sel, labels map[string]string) bool {
	for k, v := range sel {
		if labels[k] != v {
			return false
		}
	}
	return true
}

func containerHasPort(c corev1.Container, p intstr.IntOrString) bool {
	for _, cp := range c.Ports {
		if (p.Type == intstr.String && cp.Name == p.StrVal) || (p.Type == intstr.Int && cp.ContainerPort == p.IntVal) {
			return true
		}
	}
	return false
}

func podHasPort(pod corev1.PodSpec, p intstr.IntOrString) bool {
	for _, c := range pod.Containers {
		if containerHasPort(c, p) {
			return true
		}
	}
	return false
}

// TestServiceDeployments checks what every service Deployment promises the platform: probes on
// 8080, a preStop and a grace period, non-root, resources, and the env the binaries read.
func TestServiceDeployments(t *testing.T) {
	want := map[string][]string{
		"scheduler": {"NATS_URL", "NATS_USER", "NATS_PASSWORD", "HTTP_ADDR", "RELAYS"},
		"ticker":    {"NATS_URL", "NATS_USER", "NATS_PASSWORD", "HTTP_ADDR", "RELAYS", "OPENAGENTS_KEK_FILE"},
		"payer": {"NATS_URL", "NATS_USER", "NATS_PASSWORD", "HTTP_ADDR", "OPENAGENTS_KEK_FILE", "OPENAGENTS_WALLET",
			"LND_REST_URL", "LND_MACAROON_FILE", "LND_TLS_CERT_FILE"},
		"publisher": {"NATS_URL", "NATS_USER", "NATS_PASSWORD", "HTTP_ADDR", "RELAYS"},
	}
	found := map[string]bool{}
	for _, o := range loadAll(t) {
		d, ok := o.Obj.(*appsv1.Deployment)
		if !ok {
			continue
		}
		found[d.Name] = true
		pod := d.Spec.Template.Spec
		if pod.ServiceAccountName != d.Name {
			t.Errorf("%s: serviceAccountName %q, want its own", o, pod.ServiceAccountName)
		}
		if pod.TerminationGracePeriodSeconds == nil || *pod.TerminationGracePeriodSeconds < 30 {
			t.Errorf("%s: terminationGracePeriodSeconds must be set and >= 30", o)
		}
		psc := pod.SecurityContext
		if psc == nil || psc.RunAsNonRoot == nil || !*psc.RunAsNonRoot || psc.RunAsUser == nil || *psc.RunAsUser == 0 {
			t.Errorf("%s: pod must run as a non-root uid", o)
		}
		if len(pod.Containers) != 1 {
			t.Fatalf("%s: %d containers", o, len(pod.Containers))
		}
		c := pod.Containers[0]
		if !strings.Contains(c.Image, "/"+d.Name) {
			t.Errorf("%s: image %s is not the %s image", o, c.Image, d.Name)
		}
		if !containerHasPort(c, intstr.FromInt32(8080)) {
			t.Errorf("%s: no container port 8080", o)
		}
		for path, p := range map[string]*corev1.Probe{"/readyz": c.ReadinessProbe, "/healthz": c.LivenessProbe} {
			if p == nil || p.HTTPGet == nil || p.HTTPGet.Path != path {
				t.Errorf("%s: want an httpGet probe on %s", o, path)
			}
		}
		if c.Lifecycle == nil || c.Lifecycle.PreStop == nil {
			t.Errorf("%s: no preStop", o)
		}
		sc := c.SecurityContext
		if sc == nil || sc.AllowPrivilegeEscalation == nil || *sc.AllowPrivilegeEscalation || sc.ReadOnlyRootFilesystem == nil || !*sc.ReadOnlyRootFilesystem {
			t.Errorf("%s: container must forbid privilege escalation and use a read-only root", o)
		}
		for _, r := range []corev1.ResourceName{corev1.ResourceCPU, corev1.ResourceMemory} {
			if _, ok := c.Resources.Requests[r]; !ok {
				t.Errorf("%s: no %s request", o, r)
			}
			if _, ok := c.Resources.Limits[r]; !ok {
				t.Errorf("%s: no %s limit", o, r)
			}
		}
		env := map[string]corev1.EnvVar{}
		for _, e := range c.Env {
			env[e.Name] = e
		}
		for _, name := range want[d.Name] {
			if _, ok := env[name]; !ok {
				t.Errorf("%s: env %s missing", o, name)
			}
		}
		if env["NATS_USER"].Value != d.Name {
			t.Errorf("%s: NATS_USER %q, want %q", o, env["NATS_USER"].Value, d.Name)
		}
		if env["HTTP_ADDR"].Value != ":8080" {
			t.Errorf("%s: HTTP_ADDR %q", o, env["HTTP_ADDR"].Value)
		}
	}
	for name := range want {
		if !found[name] {
			t.Errorf("no Deployment %s", name)
		}
	}
}

// skipOrFail skips when a tool is missing, unless CI=true, where it fails.
func skipOrFail(t *testing.T, reason string) {
	t.Helper()
	if os.Getenv("CI") == "true" {
		t.Fatalf("CI=true and %s", reason)
	}
	t.Skipf("SKIP (loud): %s; run `make test-deps`", reason)
}
