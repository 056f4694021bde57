package audex_test

import (
	"context"
	"testing"

	"github.com/compose-spec/compose-go/v2/cli"
)

// TestComposeFiles loads the compose files as `docker compose config`
// does (compose-go, the library Docker Compose is built on: the schema,
// merging the scale file over the base, interpolation), since this
// machine has no Docker: the base file alone, and the scale file over it
// with a replica, three APIs and three workers.
func TestComposeFiles(t *testing.T) {
	for _, files := range [][]string{{"docker-compose.yml"}, {"docker-compose.yml", "docker-compose.scale.yml"}} {
		opts, err := cli.NewProjectOptions(files, cli.WithOsEnv, cli.WithName("audex"), cli.WithWorkingDirectory("."))
		if err != nil {
			t.Fatal(err)
		}
		project, err := opts.LoadProject(context.Background())
		if err != nil {
			t.Fatalf("%v: %v", files, err)
		}
		if len(files) == 1 {
			continue
		}
		want := map[string]int{"api": 3, "worker": 3, "postgres-replica": 1}
		for name, replicas := range want {
			s, ok := project.Services[name]
			if !ok {
				t.Fatalf("%v: no service %s", files, name)
			}
			if got := s.GetScale(); got != replicas {
				t.Errorf("%v: %s runs %d, want %d", files, name, got, replicas)
			}
		}
		for _, name := range []string{"api", "worker"} {
			env := project.Services[name].Environment["AUDEX_READ_DATABASE_URL"]
			if env == nil || *env == "" {
				t.Errorf("%v: %s has no AUDEX_READ_DATABASE_URL", files, name)
			}
		}
		if ports := project.Services["api"].Ports; len(ports) != 1 || ports[0].Published != "8080-8082" || ports[0].HostIP != "127.0.0.1" {
			t.Errorf("%v: api publishes %+v, want 127.0.0.1:8080-8082 only", files, ports)
		}
	}
}
