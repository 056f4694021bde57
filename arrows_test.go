package audex_test

import (
	"os/exec"
	"slices"
	"strings"
	"testing"
)

// The package list is the dependency graph (docs/design.md, "Layout"):
// these are its arrows that must not exist. Each rule names packages, what
// they must not reach and why; `go list` finds what they do reach.

// cloudSDKs are the import path prefixes of the object stores' SDKs.
var cloudSDKs = []string{"github.com/aws/", "cloud.google.com/", "github.com/Azure/", "google.golang.org/api/"}

const module = "github.com/audex-dev/audex"

type arrowRule struct {
	pkgs string // a go list pattern
	// reach is how far to look: "imports" (the packages' own imports),
	// "deps" (everything they link) or "test deps" (with their tests).
	reach string
	// forbidden are import paths or path prefixes (ending in /).
	forbidden []string
	why       string
}

var arrowRules = []arrowRule{
	{"./cmd/api", "deps", append([]string{module + "/internal/sinks", module + "/internal/jobs", module + "/internal/webhook"}, cloudSDKs...),
		"the API enqueues jobs (internal/queue); only the worker writes objects"},
	{"./internal/store", "imports", []string{"net/http"},
		"the store is SQL only; HTTP belongs to internal/api"},
	{"./internal/store", "deps", []string{module + "/internal/sinks", module + "/internal/api", module + "/internal/jobs", module + "/internal/queue"},
		"the store is below every job and handler"},
	{"./internal/sinks/...", "test deps", []string{module + "/internal/store", module + "/internal/storetest", module + "/internal/api", module + "/internal/jobs"},
		"a sink writes bytes to a destination and knows nothing of the database, even in its tests"},
	{"./internal/webhook/...", "test deps", []string{module + "/internal/store", module + "/internal/storetest", module + "/internal/api", module + "/internal/jobs", "github.com/riverqueue/"},
		"a webhook client POSTs bytes to an allowed host and knows nothing of the database or the queue"},
	{"./internal/integrity", "deps", []string{module + "/internal/", "github.com/jackc/", "github.com/riverqueue/", "net/http"},
		"what the log signs and its verifiers check needs no database, queue or HTTP, so that offline verifiers can use it"},
	{"./internal/queue", "deps", append([]string{module + "/"}, cloudSDKs...),
		"job arguments and the insert client need River alone"},
	{"./internal/pgserver", "deps", []string{module + "/", "github.com/"},
		"a private server is PostgreSQL's own programs run in a folder: it needs no driver and nothing of audex"},
	{".", "deps", []string{module + "/", "github.com/jackc/", "github.com/riverqueue/"},
		"the domain package is the centre: it imports no other package of audex, nor the database"},
	{"./internal/console", "deps", []string{module + "/", "github.com/"},
		"the console's files are served by the API and call its routes; they need nothing else"},
	{"./client", "deps", []string{module + "/internal/"},
		"the SDK is public and must build outside the module"},
}

func TestArrows(t *testing.T) {
	goBin, err := exec.LookPath("go")
	if err != nil {
		t.Fatalf("the go command is needed to list the packages' imports: %v", err)
	}
	for _, rule := range arrowRules {
		t.Run(rule.pkgs+" "+rule.reach, func(t *testing.T) {
			args := []string{"list"}
			switch rule.reach {
			case "imports":
				args = append(args, "-f", `{{join .Imports "\n"}}`)
			case "deps":
				args = append(args, "-deps", "-f", "{{.ImportPath}}")
			case "test deps":
				args = append(args, "-deps", "-test", "-f", "{{.ImportPath}}")
			default:
				t.Fatalf("unknown reach %q", rule.reach)
			}
			out, err := exec.Command(goBin, append(args, rule.pkgs)...).Output()
			if err != nil {
				t.Fatalf("go list %s: %v", rule.pkgs, err)
			}
			reached := strings.Fields(string(out))
			if len(reached) == 0 {
				t.Fatalf("go list %s listed nothing", rule.pkgs)
			}
			var bad []string
			for _, p := range reached {
				p, _, _ = strings.Cut(p, " ") // "pkg [pkg.test]"
				if forbidden(p, rule) && !slices.Contains(bad, p) {
					bad = append(bad, p)
				}
			}
			if len(bad) > 0 {
				t.Errorf("%s reaches %s: %s", rule.pkgs, strings.Join(bad, ", "), rule.why)
			}
		})
	}
}

// forbidden reports whether reaching p breaks rule. A package never breaks
// a rule by reaching itself or its own tests.
func forbidden(p string, rule arrowRule) bool {
	self := module + strings.TrimSuffix(strings.TrimPrefix(rule.pkgs, "."), "/...")
	if p == self || strings.HasPrefix(p, self+"/") && strings.HasSuffix(rule.pkgs, "/...") || strings.HasPrefix(p, self+"_test") || strings.HasPrefix(p, self+".test") {
		return false
	}
	for _, f := range rule.forbidden {
		if p == f || strings.HasSuffix(f, "/") && strings.HasPrefix(p, f) || !strings.HasSuffix(f, "/") && strings.HasPrefix(p, f+"/") {
			return true
		}
	}
	return false
}
