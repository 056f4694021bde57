package main

import (
	"encoding/json"
	"fmt"
	"math"
	"math/rand/v2"
	"net/netip"
	"sort"
	"strconv"
	"time"

	"github.com/oklog/ulid/v2"
)

// event is one synthetic audit event, before it becomes a COPY row or a
// JSON ingest body. An empty targetType means the event has no target.
type event struct {
	id                               string
	occurredAt, receivedAt           time.Time
	action                           string
	actorID, actorType, actorName    string
	targetID, targetType, targetName string
	resource                         string
	sourceIP                         netip.Addr
	userAgent, requestID             string
	method, path                     string
	statusCode                       int
	success                          bool
	durationMS                       int64
	metadata                         string
}

// actionDef is one action of the synthetic catalogue: what it is done to
// and with which HTTP method.
type actionDef struct {
	name   string
	target string // target kind, see generator.target; "" for none
	method string
}

// commonActions are drawn Zipf-like: the first is by far the most frequent.
var commonActions = []actionDef{
	{"document.viewed", "document", "GET"},
	{"user.login", "self", "POST"},
	{"document.updated", "document", "PATCH"},
	{"token.issued", "token", "POST"},
	{"agent.tool_called", "tool", "POST"},
	{"document.created", "document", "POST"},
	{"project.viewed", "project", "GET"},
	{"user.logout", "self", "POST"},
	{"secret.read", "secret", "GET"},
	{"document.shared", "document", "POST"},
	{"file.downloaded", "file", "GET"},
	{"file.uploaded", "file", "POST"},
	{"member.invited", "member", "POST"},
	{"comment.created", "document", "POST"},
	{"document.deleted", "document", "DELETE"},
	{"user.login_failed", "self", "POST"},
	{"api_key.used", "api_key", "POST"},
	{"project.updated", "project", "PATCH"},
	{"integration.synced", "integration", "POST"},
	{"role.assigned", "member", "PUT"},
	{"member.removed", "member", "DELETE"},
	{"webhook.delivered", "webhook", "POST"},
	{"secret.rotated", "secret", "POST"},
	{"project.created", "project", "POST"},
	{"user.password_changed", "self", "POST"},
	{"user.mfa_enabled", "self", "POST"},
	{"export.requested", "export", "POST"},
}

// rareActions each happen about once in rareActionEvery events: the
// "rare value" of the action filter.
var rareActions = []actionDef{
	{"project.deleted", "project", "DELETE"},
	{"sso.config_updated", "org", "PUT"},
	{"billing.plan_changed", "org", "PUT"},
}

const rareActionEvery = 10_000

// subnets are the /16s that source addresses come from: office, VPN and
// two cluster networks.
var subnets = [4][2]byte{{10, 20}, {10, 30}, {172, 16}, {172, 17}}

var (
	integrations = []string{"salesforce", "github", "slack", "jira", "okta"}
	tools        = []string{"search", "code_exec", "email_send", "calendar", "crm_lookup", "web_fetch"}
	clients      = []string{"web", "cli", "sdk", "mobile"}
	browserUA    = "Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/124.0 Safari/537.36"
	userAgents   = map[string][]string{
		"user":            {browserUA, "Mozilla/5.0 (Macintosh; Intel Mac OS X 14_4) Safari/605.1.15", "audexctl/0.3.0"},
		"service_account": {"audex-python/1.4.2", "terraform/1.8.0", "Go-http-client/1.1"},
		"agent":           {"billing-bot/2.1", "scaivault-python/1.0"},
		"api_key":         {"curl/8.5.0", "Go-http-client/1.1"},
	}
)

// population sizes one tenant's world: how many actors, projects and so on
// its events are spread over.
type population struct {
	actors, projects, docsPerProject, secrets, webhooks, apiKeys int
}

// populationFor scales a tenant's world to the number of its events.
func populationFor(events int) population {
	clamp := func(v, lo, hi int) int { return max(lo, min(hi, v)) }
	return population{
		actors:         clamp(events/200, 20, 5000),
		projects:       clamp(events/3000, 5, 300),
		docsPerProject: 400,
		secrets:        clamp(events/2000, 10, 500),
		webhooks:       clamp(events/20000, 3, 50),
		apiKeys:        clamp(events/5000, 5, 200),
	}
}

// generator makes one tenant's synthetic events. It is deterministic for a
// seed and not safe for concurrent use.
type generator struct {
	rng     *rand.Rand
	pop     population
	actor   *rand.Zipf
	action  *rand.Zipf
	project *rand.Zipf
	doc     *rand.Zipf
	// seq numbers request ids; salt keeps different generators apart.
	seq, salt uint64
	entropy   [10]byte
}

func newGenerator(seed, salt uint64, pop population) *generator {
	rng := rand.New(rand.NewPCG(seed, salt))
	return &generator{
		rng:     rng,
		pop:     pop,
		actor:   rand.NewZipf(rng, 1.1, 1, uint64(pop.actors-1)),
		action:  rand.NewZipf(rng, 1.2, 1, uint64(len(commonActions)-1)),
		project: rand.NewZipf(rng, 1.1, 1, uint64(pop.projects-1)),
		doc:     rand.NewZipf(rng, 1.05, 2, uint64(pop.docsPerProject-1)),
		salt:    salt,
	}
}

// next returns a new event that occurred at t (received shortly after),
// with a server-style id ("evt_" + ULID of t).
func (g *generator) next(t time.Time) event {
	r := int(g.actor.Uint64())
	e := event{occurredAt: t, receivedAt: t.Add(time.Duration(20+g.rng.IntN(480)) * time.Millisecond)}
	e.id = g.newID(t)
	e.actorID, e.actorType, e.actorName = actorOf(r)

	def := commonActions[g.action.Uint64()]
	if g.rng.IntN(rareActionEvery) < len(rareActions) {
		def = rareActions[g.rng.IntN(len(rareActions))]
	}
	e.action, e.method = def.name, def.method
	g.target(&e, def.target)

	e.success = g.rng.IntN(100) < 96
	if def.name == "user.login_failed" {
		e.success = false
	}
	e.statusCode = 200
	switch {
	case !e.success:
		e.statusCode = []int{401, 403, 404, 409, 500}[g.rng.IntN(5)]
	case e.method == "POST":
		e.statusCode = 201
	case e.method == "DELETE":
		e.statusCode = 204
	}
	e.durationMS = int64(g.rng.ExpFloat64()*40) + 1

	if g.rng.IntN(100) < 85 {
		e.sourceIP = homeIP(r, e.actorType)
	} else {
		s := subnets[g.rng.IntN(len(subnets))]
		e.sourceIP = netip.AddrFrom4([4]byte{s[0], s[1], byte(g.rng.IntN(256)), byte(1 + g.rng.IntN(254))})
	}
	uas := userAgents[e.actorType]
	e.userAgent = uas[(r+g.rng.IntN(4))%len(uas)] // a few agents per actor type
	g.seq++
	e.requestID = "req_" + strconv.FormatUint(mix(g.salt<<40|g.seq), 16)
	e.path = "/api/v1/" + e.resource
	return e
}

// newID returns "evt_" and a ULID whose time is t: what the server assigns
// to an event ingested as it happens.
func (g *generator) newID(t time.Time) string {
	for i := range g.entropy {
		g.entropy[i] = byte(g.rng.Uint32())
	}
	var u ulid.ULID
	_ = u.SetTime(ulid.Timestamp(t))
	_ = u.SetEntropy(g.entropy[:])
	return "evt_" + u.String()
}

// target fills in the target, resource and metadata of an event whose
// action is done to a target of the given kind.
func (g *generator) target(e *event, kind string) {
	p := int(g.project.Uint64())
	project := "projects/p" + strconv.Itoa(p)
	client := clients[g.rng.IntN(len(clients))]
	switch kind {
	case "document", "file":
		d := p*1000 + int(g.doc.Uint64())
		if kind == "document" {
			e.targetType, e.targetID, e.targetName = "document", "doc_"+strconv.Itoa(d), "Document "+strconv.Itoa(d)
			e.resource = project + "/docs/d" + strconv.Itoa(d)
		} else {
			e.targetType, e.targetID, e.targetName = "file", "file_"+strconv.Itoa(d), "file-"+strconv.Itoa(d)+".pdf"
			e.resource = project + "/files/f" + strconv.Itoa(d)
		}
		e.metadata = fmt.Sprintf(`{"client":%q,"version":%d}`, client, 1+g.rng.IntN(40))
	case "project":
		e.targetType, e.targetID, e.targetName = "project", "prj_"+strconv.Itoa(p), "Project "+strconv.Itoa(p)
		e.resource = project
		e.metadata = fmt.Sprintf(`{"client":%q}`, client)
	case "self":
		e.targetType, e.targetID, e.targetName = e.actorType, e.actorID, e.actorName
		e.resource = "auth/sessions"
		e.metadata = fmt.Sprintf(`{"method":%q,"mfa":%t}`, []string{"password", "sso", "passkey"}[g.rng.IntN(3)], g.rng.IntN(4) > 0)
	case "member":
		id, _, name := actorOf(int(g.actor.Uint64()))
		e.targetType, e.targetID, e.targetName = "user", id, name
		e.resource = project + "/members"
		e.metadata = fmt.Sprintf(`{"role":%q}`, []string{"viewer", "editor", "admin"}[g.rng.IntN(3)])
	case "token":
		integration := integrations[g.rng.IntN(len(integrations))]
		e.targetType, e.targetID, e.targetName = "token", "tok_"+strconv.FormatUint(g.rng.Uint64()>>16, 36), ""
		e.resource = "integrations/" + integration + "/oauth"
		e.metadata = `{"grant_type":"client_credentials","scopes":["read","write"]}`
	case "tool":
		tool := tools[g.rng.IntN(len(tools))]
		e.targetType, e.targetID, e.targetName = "tool", "tool_"+tool, tool
		e.resource = "agents/" + e.actorID + "/tools/" + tool
		e.metadata = fmt.Sprintf(`{"tool":%q,"tokens":%d}`, tool, 50+g.rng.IntN(4000))
	case "secret":
		s := g.rng.IntN(g.pop.secrets)
		e.targetType, e.targetID, e.targetName = "secret", "sec_"+strconv.Itoa(s), "SECRET_"+strconv.Itoa(s)
		e.resource = project + "/secrets/s" + strconv.Itoa(s)
		e.metadata = `{"version":"latest"}`
	case "api_key":
		k := g.rng.IntN(g.pop.apiKeys)
		e.targetType, e.targetID, e.targetName = "api_key", "key_"+strconv.Itoa(k), "key "+strconv.Itoa(k)
		e.resource = "api-keys/k" + strconv.Itoa(k)
		e.metadata = `{}`
	case "integration":
		integration := integrations[g.rng.IntN(len(integrations))]
		e.targetType, e.targetID, e.targetName = "integration", "int_"+integration, integration
		e.resource = "integrations/" + integration
		e.metadata = fmt.Sprintf(`{"records":%d}`, g.rng.IntN(5000))
	case "webhook":
		w := g.rng.IntN(g.pop.webhooks)
		e.targetType, e.targetID, e.targetName = "webhook", "wh_"+strconv.Itoa(w), ""
		e.resource = "webhooks/wh" + strconv.Itoa(w)
		e.metadata = fmt.Sprintf(`{"attempt":%d}`, 1+g.rng.IntN(3))
	case "export":
		e.targetType, e.targetID, e.targetName = "export", "exp_"+strconv.FormatUint(g.rng.Uint64()>>16, 36), ""
		e.resource = project + "/exports"
		e.metadata = `{"format":"csv"}`
	default: // "org"
		e.targetType, e.targetID, e.targetName = "org", "org", "Organisation"
		e.resource = "org/settings"
		e.metadata = fmt.Sprintf(`{"client":%q}`, client)
	}
}

// actorOf returns the id, type and name of the actor of Zipf rank r. The
// busiest actors are machines, as in most real audit logs.
func actorOf(r int) (id, typ, name string) {
	kinds := []string{"service_account", "agent", "user", "service_account", "agent"}
	typ = "user"
	if r < len(kinds) {
		typ = kinds[r]
	} else {
		switch h := mix(uint64(r)) % 100; {
		case h < 70:
		case h < 82:
			typ = "service_account"
		case h < 94:
			typ = "agent"
		default:
			typ = "api_key"
		}
	}
	n := strconv.Itoa(r)
	switch typ {
	case "service_account":
		return "sa_" + n, typ, "ci-deployer-" + n
	case "agent":
		return "agent_" + n, typ, "billing-bot-" + n
	case "api_key":
		return "key_" + n, typ, "integration key " + n
	}
	return "usr_" + n, typ, "user" + n + "@example.com"
}

// homeIP is the address that actor r usually comes from: users from the
// office or VPN networks, machines from the cluster networks.
func homeIP(r int, actorType string) netip.Addr {
	h := mix(uint64(r) + 0x9e37)
	s := subnets[2+h%2]
	if actorType == "user" {
		s = subnets[h%2]
	}
	return netip.AddrFrom4([4]byte{s[0], s[1], byte(h >> 8), byte(1 + (h>>16)%254)})
}

// mix is splitmix64's finaliser: a bijection on uint64, so distinct inputs
// give distinct, random-looking outputs.
func mix(x uint64) uint64 {
	x ^= x >> 30
	x *= 0xbf58476d1ce4e5b9
	x ^= x >> 27
	x *= 0x94d049bb133111eb
	x ^= x >> 31
	return x
}

// timeline spreads n events over [start, end) with a weekly rhythm: busy
// working hours, quiet nights, quieter weekends. at(i) is the time of the
// i-th event and never decreases.
type timeline struct {
	start time.Time
	n     int
	cdf   []float64 // cumulative share of events by the end of each hour
}

func newTimeline(start, end time.Time, n int) timeline {
	hours := int(math.Ceil(end.Sub(start).Hours()))
	cdf := make([]float64, hours)
	total := 0.0
	for h := range hours {
		t := start.Add(time.Duration(h) * time.Hour)
		w := 1.0
		if hr := t.Hour(); hr >= 8 && hr < 19 {
			w = 4
		}
		if wd := t.Weekday(); wd == time.Saturday || wd == time.Sunday {
			w *= 0.4
		}
		if h == hours-1 { // the last, partial hour
			w *= end.Sub(t).Hours()
		}
		total += w
		cdf[h] = total
	}
	for h := range cdf {
		cdf[h] /= total
	}
	return timeline{start: start, n: n, cdf: cdf}
}

func (tl timeline) at(i int) time.Time {
	u := (float64(i) + 0.5) / float64(tl.n)
	h := sort.SearchFloat64s(tl.cdf, u)
	h = min(h, len(tl.cdf)-1)
	lo := 0.0
	if h > 0 {
		lo = tl.cdf[h-1]
	}
	frac := (u - lo) / (tl.cdf[h] - lo)
	return tl.start.Add(time.Duration((float64(h) + frac) * float64(time.Hour))).Truncate(time.Microsecond)
}

// copyColumns are the events columns that COPY rows fill, in copyRow's
// order.
var copyColumns = []string{
	"tenant_id", "id", "occurred_at", "received_at", "action",
	"actor_id", "actor_type", "actor_name",
	"target_id", "target_type", "target_name",
	"resource", "source_ip", "user_agent", "request_id", "method", "path",
	"status_code", "success", "duration_ms", "metadata",
}

// copyRow is e as a row of copyColumns, stored as InsertEvents stores an
// ingested event.
func (e *event) copyRow(tenant string) []any {
	var targetID, targetType, targetName any
	if e.targetType != "" {
		targetID, targetType, targetName = e.targetID, e.targetType, e.targetName
	}
	return []any{
		tenant, e.id, e.occurredAt, e.receivedAt, e.action,
		e.actorID, e.actorType, e.actorName,
		targetID, targetType, targetName,
		e.resource, netip.PrefixFrom(e.sourceIP, 32), e.userAgent, e.requestID, e.method, e.path,
		e.statusCode, e.success, e.durationMS, e.metadata,
	}
}

// wireEvent is an event as a client sends it to POST /v1/audit/events.
type wireEvent struct {
	ID         string          `json:"id,omitempty"` // "": the server assigns one
	OccurredAt string          `json:"occurred_at"`
	Action     string          `json:"action"`
	Actor      wireParty       `json:"actor"`
	Target     *wireParty      `json:"target,omitempty"`
	Resource   string          `json:"resource"`
	SourceIP   string          `json:"source_ip"`
	UserAgent  string          `json:"user_agent"`
	RequestID  string          `json:"request_id"`
	Method     string          `json:"method"`
	Path       string          `json:"path"`
	StatusCode int             `json:"status_code"`
	Success    bool            `json:"success"`
	DurationMS int64           `json:"duration_ms"`
	Metadata   json.RawMessage `json:"metadata"`
}

type wireParty struct {
	ID   string `json:"id"`
	Type string `json:"type"`
	Name string `json:"name"`
}

// wire is e as an ingest client sends it: without id (the server assigns
// one unless the caller sets it) and without received_at.
func (e *event) wire() wireEvent {
	w := wireEvent{
		OccurredAt: e.occurredAt.UTC().Format(time.RFC3339Nano),
		Action:     e.action,
		Actor:      wireParty{ID: e.actorID, Type: e.actorType, Name: e.actorName},
		Resource:   e.resource, SourceIP: e.sourceIP.String(), UserAgent: e.userAgent,
		RequestID: e.requestID, Method: e.method, Path: e.path,
		StatusCode: e.statusCode, Success: e.success, DurationMS: e.durationMS,
		Metadata: json.RawMessage(e.metadata),
	}
	if e.targetType != "" {
		w.Target = &wireParty{ID: e.targetID, Type: e.targetType, Name: e.targetName}
	}
	return w
}
