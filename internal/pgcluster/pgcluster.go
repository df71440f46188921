// Package pgcluster starts a throwaway PostgreSQL cluster from the local
// server binaries: a temp data directory, a free loopback port, trust auth.
// It serves tests (internal/pgtest) and `migrate create` without a dev URL.
package pgcluster

import (
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"strconv"
	"time"
)

// DefaultBinDir holds the PostgreSQL 15 server binaries on Debian/Ubuntu.
const DefaultBinDir = "/usr/lib/postgresql/15/bin"

// Cluster is a running throwaway cluster.
type Cluster struct {
	dir   string
	bin   string
	port  int
	runAs string // "postgres" when we are root, else ""
	opts  Options
}

// Options tune a cluster.
type Options struct {
	// Durable turns synchronous_commit on: a commit is acknowledged only
	// once its WAL is written, so a crash of the server process (Crash)
	// loses no acknowledged transaction. By default test clusters run
	// with synchronous_commit off, which is faster and may lose the last
	// acknowledged commits on a crash. (fsync stays off either way: the
	// operating system, which keeps written pages, does not crash.)
	Durable bool
}

// Start initialises and starts a cluster. binDir "" means DefaultBinDir, or
// PG_BIN_DIR when set. The caller must Stop it.
func Start(ctx context.Context, binDir string) (*Cluster, error) {
	return StartWith(ctx, binDir, Options{})
}

// StartWith is Start with options.
func StartWith(ctx context.Context, binDir string, opts Options) (*Cluster, error) {
	if binDir == "" {
		binDir = os.Getenv("PG_BIN_DIR")
	}
	if binDir == "" {
		binDir = DefaultBinDir
	}
	if _, err := os.Stat(filepath.Join(binDir, "initdb")); err != nil {
		return nil, fmt.Errorf("pgcluster: no PostgreSQL server binaries in %s: %w", binDir, err)
	}
	dir, err := os.MkdirTemp("", "pgcluster-")
	if err != nil {
		return nil, err
	}
	c := &Cluster{dir: dir, bin: binDir, opts: opts}
	// initdb refuses to run as root: run the server as "postgres" then.
	if os.Geteuid() == 0 {
		c.runAs = "postgres"
		u, err := user.Lookup(c.runAs)
		if err != nil {
			os.RemoveAll(dir)
			return nil, fmt.Errorf("pgcluster: running as root needs a %q user: %w", c.runAs, err)
		}
		uid, _ := strconv.Atoi(u.Uid)
		gid, _ := strconv.Atoi(u.Gid)
		if err := os.Chown(dir, uid, gid); err != nil {
			os.RemoveAll(dir)
			return nil, err
		}
	}
	if err := c.run(ctx, "initdb", "-D", c.dataDir(), "-U", "postgres", "--auth=trust",
		"-E", "UTF8", "--locale=C.UTF-8", "--no-sync"); err != nil {
		os.RemoveAll(dir)
		return nil, err
	}
	// The port is picked free and then given to the server; on the rare
	// collision with another process, try again with a new one.
	for attempt := 0; ; attempt++ {
		if c.port, err = freePort(); err != nil {
			break
		}
		err = c.start(ctx)
		if err == nil || attempt == 2 {
			break
		}
	}
	if err != nil {
		log, _ := os.ReadFile(filepath.Join(c.dir, "pg.log"))
		os.RemoveAll(dir)
		return nil, fmt.Errorf("%w\n%s", err, log)
	}
	return c, nil
}

// URL is the base URL of the cluster's "postgres" database (superuser
// "postgres", no password).
func (c *Cluster) URL() string { return c.DatabaseURL("postgres") }

// DatabaseURL is the URL of database name on the cluster.
func (c *Cluster) DatabaseURL(name string) string {
	return fmt.Sprintf("postgres://postgres@127.0.0.1:%d/%s?sslmode=disable", c.port, name)
}

// Stop stops the server (fast mode) and removes its directory.
func (c *Cluster) Stop() error {
	if c == nil {
		return nil
	}
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	err := c.run(ctx, "pg_ctl", "-D", c.dataDir(), "-m", "fast", "-w", "stop")
	return errors.Join(err, os.RemoveAll(c.dir))
}

// Pause stops the server (fast mode: open sessions are terminated) but
// keeps its data directory and port, so that Resume brings the same cluster
// back. Fault tests use it to take the database away for a while.
func (c *Cluster) Pause(ctx context.Context) error {
	return c.run(ctx, "pg_ctl", "-D", c.dataDir(), "-m", "fast", "-w", "-t", "60", "stop")
}

// Crash stops the server the way a crash would (immediate mode: every
// process quits at once, nothing is flushed or checkpointed), keeping its
// data directory and port; Resume brings it back through crash recovery.
func (c *Cluster) Crash(ctx context.Context) error {
	return c.run(ctx, "pg_ctl", "-D", c.dataDir(), "-m", "immediate", "-w", "-t", "60", "stop")
}

// Resume starts a paused (or crashed) cluster again on the same port and data, and
// returns once it accepts connections.
func (c *Cluster) Resume(ctx context.Context) error { return c.start(ctx) }

func (c *Cluster) start(ctx context.Context) error {
	syncCommit := "off"
	if c.opts.Durable {
		syncCommit = "on"
	}
	opts := fmt.Sprintf("-p %d -k %s -c listen_addresses=127.0.0.1 -c fsync=off"+
		" -c synchronous_commit=%s -c full_page_writes=off -c max_connections=200", c.port, c.dir, syncCommit)
	return c.run(ctx, "pg_ctl", "-D", c.dataDir(), "-l", filepath.Join(c.dir, "pg.log"),
		"-o", opts, "-w", "-t", "60", "start")
}

// Dir is the cluster's temp directory (data, log, socket).
func (c *Cluster) Dir() string { return c.dir }

func (c *Cluster) dataDir() string { return filepath.Join(c.dir, "data") }

func (c *Cluster) run(ctx context.Context, name string, args ...string) error {
	prog := filepath.Join(c.bin, name)
	var cmd *exec.Cmd
	if c.runAs != "" {
		cmd = exec.CommandContext(ctx, "runuser", append([]string{"-u", c.runAs, "--", prog}, args...)...)
	} else {
		cmd = exec.CommandContext(ctx, prog, args...)
	}
	cmd.Dir = c.dir
	out, err := cmd.CombinedOutput()
	if err != nil {
		return fmt.Errorf("pgcluster: %s: %w\n%s", name, err, out)
	}
	return nil
}

func freePort() (int, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, err
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port, nil
}
