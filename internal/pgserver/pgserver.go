// Package pgserver runs a PostgreSQL server of its own, in a temporary
// folder, with the server programs of a bin folder: a test's private
// server (internal/storetest) or the benchmark's streaming replica. It
// needs no driver and nothing else of audex.
package pgserver

import (
	"context"
	"fmt"
	"net"
	"net/url"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"strconv"
	"strings"
)

// Server is a cluster in a folder of its own, on a port of 127.0.0.1.
type Server struct {
	// URL is the server's "postgres" database as the postgres user.
	URL     string
	bin     string
	dir     string
	port    int
	asOwner []string
}

// Init creates a new cluster (initdb, trust authentication, UTF8), not
// started. Remove it when done.
func Init(bin string) (*Server, error) {
	s, err := newDir(bin)
	if err != nil {
		return nil, err
	}
	if err := s.run(filepath.Join(bin, "initdb"), "-D", s.dataDir(), "-U", "postgres", "-A", "trust", "-E", "UTF8", "--no-sync"); err != nil {
		s.Remove()
		return nil, err
	}
	return s, nil
}

// Standby makes a streaming replica of the server of primaryURL, as an
// operator would: a base backup (pg_basebackup -R, which writes
// primary_conninfo and standby.signal) with the server settings of
// settings ("recovery_min_apply_delay = '300ms'", say) added, not
// started: Start makes it a hot standby. Remove it when done.
func Standby(bin, primaryURL string, settings ...string) (*Server, error) {
	u, err := url.Parse(primaryURL)
	if err != nil {
		return nil, fmt.Errorf("the primary's URL: %w", err)
	}
	s, err := newDir(bin)
	if err != nil {
		return nil, err
	}
	if err := s.run(filepath.Join(bin, "pg_basebackup"), "-h", u.Hostname(), "-p", u.Port(), "-U", u.User.Username(),
		"-D", s.dataDir(), "-R", "-X", "stream", "-c", "fast", "--no-sync"); err != nil {
		s.Remove()
		return nil, err
	}
	if len(settings) > 0 {
		line := strings.Join(settings, "\n") + "\n"
		if err := s.run("sh", "-c", `printf '%s' "$1" >> "$2"`, "sh", line, filepath.Join(s.dataDir(), "postgresql.auto.conf")); err != nil {
			s.Remove()
			return nil, fmt.Errorf("standby settings: %w", err)
		}
	}
	return s, nil
}

// newDir returns a Server (not yet created) in a new temporary folder
// that the programs of bin may use, on a free port. PostgreSQL refuses to
// run as root: as root the cluster belongs to the postgres user, in a
// folder that user can reach.
func newDir(bin string) (*Server, error) {
	base := ""
	var owner *user.User
	if os.Geteuid() == 0 {
		var err error
		if owner, err = user.Lookup("postgres"); err != nil {
			return nil, fmt.Errorf("running as root needs the postgres user: %w", err)
		}
		base = "/var/tmp"
	}
	port, err := freePort()
	if err != nil {
		return nil, err
	}
	dir, err := os.MkdirTemp(base, "audex-pg-")
	if err != nil {
		return nil, err
	}
	s := &Server{bin: bin, dir: dir, port: port, URL: fmt.Sprintf("postgres://postgres@127.0.0.1:%d/postgres?sslmode=disable", port)}
	if owner != nil {
		uid, _ := strconv.Atoi(owner.Uid)
		gid, _ := strconv.Atoi(owner.Gid)
		if err := os.Chown(dir, uid, gid); err != nil {
			_ = os.RemoveAll(dir)
			return nil, err
		}
		s.asOwner = []string{"runuser", "-u", "postgres", "--"}
	}
	return s, nil
}

// Start starts the server (again), listening on 127.0.0.1 only, with
// the server options of options ("-c fsync=off", say) added, and waits
// until it accepts connections.
func (s *Server) Start(options ...string) error {
	opts := strings.Join(append([]string{fmt.Sprintf("-c listen_addresses=127.0.0.1 -p %d -k %s", s.port, s.dir)}, options...), " ")
	if err := s.pgCtl("start", "-w", "-l", filepath.Join(s.dir, "server.log"), "-o", opts); err != nil {
		log, _ := os.ReadFile(filepath.Join(s.dir, "server.log"))
		return fmt.Errorf("start PostgreSQL: %w\n%s", err, log)
	}
	return nil
}

// Stop shuts the server down the way a restart does: sessions are ended
// (clients see "terminating connection due to administrator command") and
// new connections are refused until Start.
func (s *Server) Stop() error {
	if err := s.pgCtl("stop", "-m", "fast"); err != nil {
		return fmt.Errorf("stop PostgreSQL: %w", err)
	}
	return nil
}

// Remove stops the server at once and removes its folder.
func (s *Server) Remove() {
	_ = s.pgCtl("stop", "-m", "immediate")
	_ = os.RemoveAll(s.dir)
}

func (s *Server) dataDir() string { return filepath.Join(s.dir, "data") }

func (s *Server) pgCtl(args ...string) error {
	return s.run(filepath.Join(s.bin, "pg_ctl"), append([]string{"-D", s.dataDir()}, args...)...)
}

// run runs a server program as the cluster's owner.
func (s *Server) run(name string, args ...string) error {
	argv := append(append(append([]string{}, s.asOwner...), name), args...)
	if out, err := exec.Command(argv[0], argv[1:]...).CombinedOutput(); err != nil {
		return fmt.Errorf("%s: %v: %s", filepath.Base(name), err, out)
	}
	return nil
}

// freePort returns a TCP port of 127.0.0.1 that nothing listens on now.
func freePort() (int, error) {
	l, err := (&net.ListenConfig{}).Listen(context.Background(), "tcp", "127.0.0.1:0")
	if err != nil {
		return 0, err
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port, nil
}
