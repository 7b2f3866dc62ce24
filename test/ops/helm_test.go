package ops

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"testing"

	"go.yaml.in/yaml/v3"

	"github.com/mirrorline/mirrorline/test/ops/kubeschema"
)

const (
	chartDir    = "deploy/helm/mirrorline"
	kubeVersion = "1.37.2" // the Kubernetes whose OpenAPI document validates the manifests (test/ops/tools)
	releaseNS   = "mirrorline"
)

// obj is one rendered Kubernetes object.
type obj map[string]any

func (o obj) kind() string       { s, _ := o["kind"].(string); return s }
func (o obj) apiVersion() string { s, _ := o["apiVersion"].(string); return s }
func (o obj) name() string       { return str(o, "metadata", "name") }
func (o obj) id() string         { return o.kind() + "/" + o.name() }

// get walks maps by key and lists by decimal index.
func get(v any, path ...string) any {
	for _, p := range path {
		switch t := v.(type) {
		case map[string]any:
			v = t[p]
		case obj:
			v = t[p]
		case []any:
			var i int
			if _, err := fmt.Sscan(p, &i); err != nil || i < 0 || i >= len(t) {
				return nil
			}
			v = t[i]
		default:
			return nil
		}
	}
	return v
}

func str(v any, path ...string) string { s, _ := get(v, path...).(string); return s }
func list(v any, path ...string) []any { l, _ := get(v, path...).([]any); return l }
func dict(v any, path ...string) map[string]any {
	m, _ := get(v, path...).(map[string]any)
	return m
}

// render runs helm template with the values files and returns the raw output
// and the decoded objects.
func render(t *testing.T, tl Tools, valuesFiles ...string) (string, []obj) {
	t.Helper()
	args := []string{"template", "t", chartDir, "--namespace", releaseNS, "--kube-version", kubeVersion}
	for _, f := range valuesFiles {
		args = append(args, "-f", f)
	}
	out, err := runSplit(t, tl.Helm, args...)
	if err != nil {
		t.Fatalf("helm %s: %v\n%s", strings.Join(args, " "), err, out)
	}
	return out, decodeDocs(t, out)
}

func runSplit(t *testing.T, name string, args ...string) (string, error) {
	t.Helper()
	out, err := run(t, root, name, args...)
	return out, err
}

func decodeDocs(t *testing.T, s string) []obj {
	t.Helper()
	dec := yaml.NewDecoder(strings.NewReader(s))
	var objs []obj
	for {
		var o map[string]any
		if err := dec.Decode(&o); errors.Is(err, io.EOF) {
			break
		} else if err != nil {
			t.Fatalf("rendered YAML: %v", err)
		}
		if o != nil {
			objs = append(objs, obj(o))
		}
	}
	return objs
}

// kubeconform validates the rendered manifests offline against strict schemas
// generated from the pinned Kubernetes OpenAPI document and KEDA CRDs.
func kubeconform(t *testing.T, tl Tools, manifests string, objs []obj) (valid int, problems []string) {
	t.Helper()
	dir := t.TempDir()
	src := kubeschema.New()
	if err := src.LoadSwagger(tl.K8sOpenAPI); err != nil {
		t.Fatal(err)
	}
	crds, _ := filepath.Glob(filepath.Join(tl.KedaCRDs, "keda.sh_*.yaml"))
	for _, c := range crds {
		if err := src.LoadCRDs(c); err != nil {
			t.Fatal(err)
		}
	}
	seen := map[[2]string]bool{}
	var kinds [][2]string
	for _, o := range objs {
		k := [2]string{o.apiVersion(), o.kind()}
		if !seen[k] {
			seen[k] = true
			kinds = append(kinds, k)
		}
	}
	if err := src.WriteSchemas(dir, kinds); err != nil {
		t.Fatal(err)
	}
	file := filepath.Join(t.TempDir(), "manifests.yaml")
	if err := os.WriteFile(file, []byte(manifests), 0o600); err != nil {
		t.Fatal(err)
	}
	out, _ := runSplit(t, tl.Kubeconform, "-strict", "-verbose", "-output", "json",
		"-kubernetes-version", kubeVersion, "-schema-location", kubeschema.LocationTemplate(dir), file)
	var res struct {
		Resources []struct {
			Kind, Name, Status, Msg string
			ValidationErrors        []struct{ Path, Msg string }
		}
	}
	if err := json.Unmarshal([]byte(out), &res); err != nil {
		t.Fatalf("kubeconform output: %v\n%s", err, out)
	}
	for _, r := range res.Resources {
		if r.Status == "statusValid" {
			valid++
			continue
		}
		p := fmt.Sprintf("%s/%s: %s: %s", r.Kind, r.Name, r.Status, r.Msg)
		for _, ve := range r.ValidationErrors {
			p += fmt.Sprintf("\n    %s: %s", ve.Path, ve.Msg)
		}
		problems = append(problems, p)
	}
	return valid, problems
}

type chartCase struct {
	name   string
	values []string
	// wantKinds counts rendered objects per kind.
	wantKinds map[string]int
	autoscale string // keda, hpa or none
}

var chartCases = []chartCase{
	{"default", nil, map[string]int{"Deployment": 5, "Service": 2, "ConfigMap": 1, "ServiceAccount": 1, "Job": 1, "NetworkPolicy": 4, "ScaledObject": 1}, "keda"},
	{"full", []string{chartDir + "/ci/full-values.yaml"}, map[string]int{"Deployment": 7, "DaemonSet": 1, "Service": 4, "Secret": 2, "ScaledObject": 1, "TriggerAuthentication": 1, "NetworkPolicy": 4}, "keda"},
	{"hpa", []string{chartDir + "/ci/hpa-values.yaml"}, map[string]int{"Deployment": 5, "HorizontalPodAutoscaler": 1, "Secret": 0, "ScaledObject": 0}, "hpa"},
	{"minimal", []string{chartDir + "/ci/minimal-values.yaml"}, map[string]int{"Deployment": 4, "NetworkPolicy": 0, "Job": 0, "ScaledObject": 0, "HorizontalPodAutoscaler": 0}, "none"},
}

func TestHelmChart(t *testing.T) {
	tl := getTools(t)
	t.Logf("helm %s, kubeconform %s, Kubernetes schemas %s, KEDA CRDs %s",
		tl.Versions["HELM_VERSION"], tl.Versions["KUBECONFORM_VERSION"], tl.Versions["KUBERNETES_VERSION"], tl.Versions["KEDA_VERSION"])
	for _, tc := range chartCases {
		t.Run(tc.name, func(t *testing.T) {
			lint := []string{"lint", "--strict", chartDir, "--kube-version", kubeVersion}
			for _, f := range tc.values {
				lint = append(lint, "-f", f)
			}
			if out, err := runSplit(t, tl.Helm, lint...); err != nil {
				t.Fatalf("helm lint: %v\n%s", err, out)
			}
			manifests, objs := render(t, tl, tc.values...)
			valid, problems := kubeconform(t, tl, manifests, objs)
			if len(problems) > 0 {
				t.Fatalf("kubeconform: %d valid, problems:\n%s", valid, strings.Join(problems, "\n"))
			}
			if valid != len(objs) {
				t.Fatalf("kubeconform validated %d objects, helm rendered %d", valid, len(objs))
			}
			counts := map[string]int{}
			for _, o := range objs {
				counts[o.kind()]++
			}
			for k, n := range tc.wantKinds {
				if counts[k] != n {
					t.Errorf("%d %s rendered, want %d (all: %v)", counts[k], k, n, counts)
				}
			}
			checkObjects(t, objs, tc)
			t.Logf("%d objects valid: %v", valid, counts)
		})
	}
}

// checkObjects checks what the schemas cannot: references between objects, the
// commands and flags of every mirrorline container, the configuration file,
// the shadow isolation and the autoscaling wiring.
func checkObjects(t *testing.T, objs []obj, tc chartCase) {
	t.Helper()
	byID := map[string]obj{}
	for _, o := range objs {
		if _, dup := byID[o.id()]; dup && str(o, "metadata", "namespace") == "" {
			t.Errorf("%s rendered twice", o.id())
		}
		byID[o.id()] = o
	}
	// Secrets the chart expects the operator to create.
	external := map[string]bool{"mirrorline-redact-hash-key": true, "kafka-credentials": true, "kafka-client-tls": true,
		"shadow-api-token": true, "shadow-api-key": true, "shadow-jwt-key": true}

	var configs []string
	for _, o := range objs {
		if o.kind() == "ConfigMap" {
			for k, v := range dict(o, "data") {
				if strings.HasSuffix(k, ".yaml") {
					configs = append(configs, v.(string))
					checkConfigFile(t, o.id()+" "+k, v.(string))
				}
			}
		}
	}
	if len(configs) != 1 {
		t.Fatalf("want one mirrorline config file, got %d", len(configs))
	}
	var cfg struct {
		SASL struct {
			Mechanism    string `yaml:"mechanism"`
			PasswordFile string `yaml:"password_file"`
		} `yaml:"sasl"`
	}
	if err := yaml.Unmarshal([]byte(configs[0]), &cfg); err != nil {
		t.Fatal(err)
	}

	replayerDeploy := ""
	for _, o := range objs {
		var pod map[string]any
		switch o.kind() {
		case "Deployment", "DaemonSet", "Job":
			pod = dict(o, "spec", "template")
		default:
			continue
		}
		if o.kind() != "Job" {
			sel := dict(o, "spec", "selector", "matchLabels")
			labels := dict(pod, "metadata", "labels")
			for k, v := range sel {
				if labels[k] != v {
					t.Errorf("%s: selector %s=%v does not match the pod template labels %v", o.id(), k, v, labels)
				}
			}
		}
		spec := dict(pod, "spec")
		volumes := map[string]map[string]any{}
		for _, v := range list(spec, "volumes") {
			vm := v.(map[string]any)
			volumes[vm["name"].(string)] = vm
			if cm := str(vm, "configMap", "name"); cm != "" && byID["ConfigMap/"+cm] == nil {
				t.Errorf("%s: volume %s uses ConfigMap %s, which the chart does not render", o.id(), vm["name"], cm)
			}
			if s := str(vm, "secret", "secretName"); s != "" && byID["Secret/"+s] == nil && !external[s] {
				t.Errorf("%s: volume %s uses Secret %s, neither rendered nor documented", o.id(), vm["name"], s)
			}
		}
		mountedAt := map[string]string{}
		hasML := false
		for _, c := range list(spec, "containers") {
			cname := str(c, "name")
			where := o.id() + " container " + cname
			ports := map[string]bool{}
			for _, p := range list(c, "ports") {
				ports[str(p, "name")] = true
			}
			for _, pr := range []string{"livenessProbe", "readinessProbe", "startupProbe"} {
				if port := get(c, pr, "httpGet", "port"); port != nil {
					if ps, ok := port.(string); ok && !ports[ps] {
						t.Errorf("%s: %s uses port %q, not declared", where, pr, ps)
					}
				}
			}
			for _, m := range list(c, "volumeMounts") {
				if volumes[str(m, "name")] == nil {
					t.Errorf("%s: mounts undeclared volume %s", where, str(m, "name"))
				}
				mountedAt[str(m, "mountPath")] = str(m, "name")
			}
			for _, e := range list(c, "env") {
				if s := str(e, "valueFrom", "secretKeyRef", "name"); s != "" && byID["Secret/"+s] == nil && !external[s] {
					t.Errorf("%s: env %s uses Secret %s, neither rendered nor documented", where, str(e, "name"), s)
				}
			}
			if !strings.HasPrefix(str(c, "image"), "mirrorline/mirrorline:") {
				continue
			}
			hasML = true
			var args []string
			for _, a := range list(c, "args") {
				args = append(args, fmt.Sprint(a))
			}
			checkMirrorlineArgs(t, where, args)
			if o.kind() != "Job" && !ports["metrics"] {
				t.Errorf("%s: no metrics port (/metrics, /healthz, /readyz)", where)
			}
			if o.kind() != "Job" && (get(c, "livenessProbe") == nil || str(c, "readinessProbe", "httpGet", "path") != "/readyz") {
				t.Errorf("%s: want /healthz liveness and /readyz readiness probes", where)
			}
			if len(args) > 0 && (args[0] == "redact" || args[0] == "compare") {
				found := false
				for _, e := range list(c, "env") {
					found = found || str(e, "name") == "MIRRORLINE_REDACT_HASH_KEY" && str(e, "valueFrom", "secretKeyRef", "name") != ""
				}
				if !found {
					t.Errorf("%s: the redaction hash key (redactor and comparator) must come from a Secret", where)
				}
			}
			if len(args) > 0 && args[0] == "replay" && o.kind() == "Deployment" {
				replayerDeploy = o.name()
			}
			if len(args) > 0 && args[0] == "ebpf" {
				if get(spec, "hostNetwork") != true || get(c, "securityContext", "privileged") != true {
					t.Errorf("%s: the eBPF collector needs hostNetwork and a privileged container", where)
				}
				if o.kind() != "DaemonSet" {
					t.Errorf("%s: the eBPF collector must be a DaemonSet", where)
				}
			} else if get(c, "securityContext", "privileged") == true {
				t.Errorf("%s: only the eBPF collector may be privileged", where)
			}
		}
		if cfg.SASL.Mechanism != "" && hasML {
			dir := filepath.Dir(cfg.SASL.PasswordFile)
			if v := mountedAt[dir]; v == "" || volumes[v] == nil || str(volumes[v], "secret", "secretName") == "" {
				t.Errorf("%s: the SASL password file %s is not on a mounted Secret", o.id(), cfg.SASL.PasswordFile)
			}
		}
	}
	if replayerDeploy == "" {
		t.Fatal("no replayer Deployment")
	}
	replayer := byID["Deployment/"+replayerDeploy]
	var scalers []obj
	for _, o := range objs {
		if o.kind() == "ScaledObject" || o.kind() == "HorizontalPodAutoscaler" {
			scalers = append(scalers, o)
		}
	}
	switch tc.autoscale {
	case "none":
		if len(scalers) != 0 || get(replayer, "spec", "replicas") == nil {
			t.Errorf("autoscaling none: want fixed replicas and no scaler")
		}
	default:
		if len(scalers) != 1 {
			t.Fatalf("autoscaling %s: %d scalers", tc.autoscale, len(scalers))
		}
		s := scalers[0]
		if str(s, "spec", "scaleTargetRef", "name") != replayerDeploy || str(s, "spec", "scaleTargetRef", "kind") != "Deployment" {
			t.Errorf("%s does not scale the replayer Deployment %s", s.id(), replayerDeploy)
		}
		if get(replayer, "spec", "replicas") != nil {
			t.Errorf("the autoscaled replayer Deployment must leave replicas to the autoscaler")
		}
		b, _ := json.Marshal(s)
		if !bytes.Contains(b, []byte("mirrorline_consumer_lag_records")) && !bytes.Contains(b, []byte(`"consumerGroup":"mirrorline-replay-`)) {
			t.Errorf("%s does not scale on the replay group's consumer lag: %s", s.id(), b)
		}
		if tc.autoscale == "keda" && s.kind() != "ScaledObject" || tc.autoscale == "hpa" && s.kind() != "HorizontalPodAutoscaler" {
			t.Errorf("autoscaling %s rendered %s", tc.autoscale, s.kind())
		}
	}
	checkShadowIsolation(t, objs)
	checkReplaySecrets(t, configs[0], replayer, tc)
}

// checkReplaySecrets: every file the replay section reads a credential or a
// JWT key from is a key of a Secret mounted read-only in the replayer
// container, and a change of the replay settings the replayer does not
// reload restarts it (checksum/replay).
func checkReplaySecrets(t *testing.T, config string, replayer obj, tc chartCase) {
	t.Helper()
	var cfg struct {
		Replay struct {
			Credentials []struct {
				File string `yaml:"file"`
			} `yaml:"credentials"`
			JWT *struct {
				KeyFile    string `yaml:"key_file"`
				SecretFile string `yaml:"secret_file"`
			} `yaml:"jwt"`
		} `yaml:"replay"`
	}
	if err := yaml.Unmarshal([]byte(config), &cfg); err != nil {
		t.Fatal(err)
	}
	var files []string
	for _, c := range cfg.Replay.Credentials {
		files = append(files, c.File)
	}
	if j := cfg.Replay.JWT; j != nil {
		files = append(files, j.KeyFile+j.SecretFile)
	}
	if tc.name == "full" && len(files) != 3 {
		t.Errorf("full values: %d credential and key files in the replay section, want 3", len(files))
	}
	spec := dict(replayer, "spec", "template", "spec")
	volumes := map[string]any{}
	for _, v := range list(spec, "volumes") {
		volumes[str(v, "name")] = v
	}
	var mounts []any
	for _, c := range list(spec, "containers") {
		if str(c, "name") == "replayer" {
			mounts = list(c, "volumeMounts")
		}
	}
	for _, f := range files {
		found := false
		for _, m := range mounts {
			if str(m, "mountPath") != filepath.Dir(f) {
				continue
			}
			v := volumes[str(m, "name")]
			if get(m, "readOnly") != true || str(v, "secret", "secretName") == "" {
				t.Errorf("replayer: %s is on volume %s, not a read-only Secret", f, str(m, "name"))
			}
			for _, it := range list(v, "secret", "items") {
				found = found || str(it, "path") == filepath.Base(f)
			}
		}
		if !found {
			t.Errorf("replayer: the replay section reads %s, which no Secret mount provides", f)
		}
	}
	if str(replayer, "spec", "template", "metadata", "annotations", "checksum/replay") == "" {
		t.Errorf("replayer: no checksum/replay annotation (a changed route or credential would not restart it)")
	}
}

// checkShadowIsolation: when NetworkPolicies are on, the shadow namespace may
// send only to DNS, Kafka and itself.
func checkShadowIsolation(t *testing.T, objs []obj) {
	t.Helper()
	var egress []obj
	any := false
	for _, o := range objs {
		if o.kind() != "NetworkPolicy" {
			continue
		}
		any = true
		if str(o, "metadata", "namespace") == "shadow" && len(dict(o, "spec", "podSelector")) == 0 {
			for _, pt := range list(o, "spec", "policyTypes") {
				if pt == "Egress" {
					egress = append(egress, o)
				}
			}
		}
	}
	if !any {
		return
	}
	if len(egress) != 1 {
		t.Fatalf("want one egress NetworkPolicy selecting every pod of the shadow namespace, got %d", len(egress))
	}
	for i, r := range list(egress[0], "spec", "egress") {
		to := list(r, "to")
		if len(to) == 0 {
			t.Errorf("shadow egress rule %d allows every destination", i)
			continue
		}
		for _, peer := range to {
			if get(peer, "ipBlock") != nil {
				t.Errorf("shadow egress rule %d allows an IP block: %v", i, peer)
				continue
			}
			ns := dict(peer, "namespaceSelector")
			if ns != nil && len(ns) == 0 {
				t.Errorf("shadow egress rule %d allows every namespace", i)
			}
			if ns == nil && get(peer, "podSelector") == nil {
				t.Errorf("shadow egress rule %d has an empty peer", i)
			}
		}
		var ports []string
		for _, p := range list(r, "ports") {
			ports = append(ports, fmt.Sprint(get(p, "port")))
		}
		sort.Strings(ports)
		nsPeer := dict(to[0], "namespaceSelector")
		switch {
		case strings.Join(ports, ",") == "53,53":
		case nsPeer != nil && fmt.Sprint(nsPeer) == "map[matchLabels:map[kubernetes.io/metadata.name:kafka]]":
		case nsPeer == nil && len(to) == 1 && len(dict(to[0], "podSelector")) == 0 && len(ports) == 0:
			// the shadow namespace's own pods
		default:
			t.Errorf("shadow egress rule %d is neither DNS, Kafka nor the namespace itself: %v", i, r)
		}
	}
}

// The chart refuses values that would break the pipeline or the isolation.
func TestHelmChartRejects(t *testing.T) {
	tl := getTools(t)
	for _, tc := range []struct {
		set  []string
		want string
	}{
		{[]string{"shadow.namespace=" + releaseNS}, "must not be the release namespace"},
		{[]string{"replayer.autoscaling.maxReplicas=50"}, "is above topics.partitions"},
		{[]string{"replayer.autoscaling.mode=vpa"}, "must be keda, hpa or none"},
		{[]string{"kafka.sasl.mechanism=PLAIN", "kafka.sasl.password=p"}, "kafka.sasl.username is required"},
		{[]string{"kafka.sasl.mechanism=PLAIN", "kafka.sasl.username=u"}, "kafka.sasl.password or kafka.sasl.existingSecret is required"},
		{[]string{"replayer.autoscaling.keda.trigger=cpu"}, "must be prometheus or kafka"},
		{[]string{"replayer.credentials[0].header=Authorization", "replayer.credentials[0].key=token"}, "secretName is required"},
	} {
		args := []string{"template", "t", chartDir, "--namespace", releaseNS, "--kube-version", kubeVersion}
		for _, s := range tc.set {
			args = append(args, "--set", s)
		}
		out, err := runSplit(t, tl.Helm, args...)
		if err == nil || !strings.Contains(out, tc.want) {
			t.Errorf("helm template --set %v: err %v, want an error with %q\n%s", tc.set, err, tc.want, firstLine(out))
		}
	}
}

// The validation really validates: kubeconform with the generated schemas
// rejects unknown fields, wrong types, missing required fields and a bad
// ScaledObject, and accepts int-or-string, quantities and nulls as the API does.
func TestKubeconformSchemasCatchErrors(t *testing.T) {
	tl := getTools(t)
	good := `apiVersion: apps/v1
kind: Deployment
metadata: {name: ok, labels: null}
spec:
  selector: {matchLabels: {app: x}}
  strategy: {rollingUpdate: {maxSurge: 1, maxUnavailable: 25%}}
  template:
    metadata: {labels: {app: x}}
    spec:
      containers:
        - name: c
          image: i
          resources: {limits: {cpu: 1, memory: 1Gi}}
          ports: [{containerPort: 80}]
---
apiVersion: keda.sh/v1alpha1
kind: ScaledObject
metadata: {name: ok}
spec:
  scaleTargetRef: {name: ok}
  triggers: [{type: prometheus, metadata: {query: up, threshold: "1", serverAddress: "http://p:9090"}}]
`
	valid, problems := kubeconform(t, tl, good, decodeDocs(t, good))
	if valid != 2 || len(problems) > 0 {
		t.Fatalf("valid manifests rejected (%d valid): %s", valid, strings.Join(problems, "\n"))
	}
	for _, bad := range []struct{ name, doc, want string }{
		{"unknown field", "apiVersion: v1\nkind: Service\nmetadata: {name: s}\nspec: {selectr: {a: b}}\n", "selectr"},
		{"wrong type", "apiVersion: apps/v1\nkind: Deployment\nmetadata: {name: d}\nspec: {replicas: two, selector: {}, template: {}}\n", "replicas"},
		{"missing required", "apiVersion: apps/v1\nkind: Deployment\nmetadata: {name: d}\nspec: {template: {}}\n", "selector"},
		{"container without image field name", "apiVersion: v1\nkind: Pod\nmetadata: {name: p}\nspec: {containers: [{image: i}]}\n", "name"},
		{"network policy typo", "apiVersion: networking.k8s.io/v1\nkind: NetworkPolicy\nmetadata: {name: n}\nspec: {podSelector: {}, egres: []}\n", "egres"},
		{"scaledobject without target", "apiVersion: keda.sh/v1alpha1\nkind: ScaledObject\nmetadata: {name: s}\nspec: {triggers: []}\n", "scaleTargetRef"},
		{"hpa v2 bad metric", "apiVersion: autoscaling/v2\nkind: HorizontalPodAutoscaler\nmetadata: {name: h}\nspec: {maxReplicas: 2, scaleTargetRef: {kind: Deployment, name: d}, metrics: [{type: External, external: {metric: {name: m}, target: {type: AverageValue, averageValue: {}}}}]}\n", "averageValue"},
	} {
		valid, problems := kubeconform(t, tl, bad.doc, decodeDocs(t, bad.doc))
		if valid != 0 || len(problems) != 1 || !strings.Contains(problems[0], bad.want) {
			t.Errorf("%s: kubeconform did not reject it naming %q: valid %d, %v", bad.name, bad.want, valid, problems)
		}
	}
}
