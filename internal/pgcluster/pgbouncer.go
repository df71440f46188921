package pgcluster

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/url"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"
)

// DefaultPgBouncer is Debian's pgbouncer binary (`apt-get install pgbouncer`).
const DefaultPgBouncer = "/usr/sbin/pgbouncer"

// PgBouncer is a running throwaway PgBouncer in front of one PostgreSQL
// server, in transaction pooling mode unless told otherwise: what
// production puts between replicas and the database, and what breaks
// named prepared statements and LISTEN.
type PgBouncer struct {
	dir      string
	port     int
	user     string
	password string
	cmd      *exec.Cmd
	exited   chan struct{}
}

// PgBouncerOptions tune StartPgBouncer.
type PgBouncerOptions struct {
	// Binary is the pgbouncer executable: "" means PGBOUNCER_BIN when set,
	// else DefaultPgBouncer.
	Binary string
	// PoolMode is "transaction" (default), "session" or "statement".
	PoolMode string
	// PoolSize is the server connections per database and user (default 10).
	PoolSize int
}

// StartPgBouncer starts PgBouncer in front of the server of upstream (a
// postgres:// URL; its database name does not matter: every database of
// that server is reachable by its name). The caller must Stop it. As root it
// runs as the "postgres" user, as Debian's service does.
func StartPgBouncer(ctx context.Context, upstream string, opts PgBouncerOptions) (*PgBouncer, error) {
	bin := opts.Binary
	if bin == "" {
		bin = os.Getenv("PGBOUNCER_BIN")
	}
	if bin == "" {
		bin = DefaultPgBouncer
	}
	if _, err := os.Stat(bin); err != nil {
		return nil, fmt.Errorf("pgcluster: no pgbouncer at %s (apt-get install pgbouncer): %w", bin, err)
	}
	if opts.PoolMode == "" {
		opts.PoolMode = "transaction"
	}
	if opts.PoolSize <= 0 {
		opts.PoolSize = 10
	}
	u, err := url.Parse(upstream)
	if err != nil {
		return nil, fmt.Errorf("pgcluster: upstream URL: %w", err)
	}
	host, port := u.Hostname(), u.Port()
	if host == "" {
		host = "127.0.0.1"
	}
	if port == "" {
		port = "5432"
	}
	b := &PgBouncer{user: u.User.Username()}
	if b.user == "" {
		b.user = "postgres"
	}
	b.password, _ = u.User.Password()
	if b.dir, err = os.MkdirTemp("", "pgbouncer-"); err != nil {
		return nil, err
	}
	var cred *syscall.Credential
	if os.Geteuid() == 0 {
		pu, err := user.Lookup("postgres")
		if err != nil {
			os.RemoveAll(b.dir)
			return nil, fmt.Errorf("pgcluster: running pgbouncer as root needs a postgres user: %w", err)
		}
		uid, _ := strconv.Atoi(pu.Uid)
		gid, _ := strconv.Atoi(pu.Gid)
		if err := os.Chown(b.dir, uid, gid); err != nil {
			os.RemoveAll(b.dir)
			return nil, err
		}
		cred = &syscall.Credential{Uid: uint32(uid), Gid: uint32(gid)}
	}
	target := fmt.Sprintf("host=%s port=%s user=%s", host, port, b.user)
	if b.password != "" {
		target += " password=" + b.password
	}
	for attempt := 0; ; attempt++ {
		if b.port, err = freePort(); err != nil {
			break
		}
		err = b.start(ctx, bin, cred, target, opts)
		if err == nil || attempt == 2 {
			break
		}
	}
	if err != nil {
		log, _ := os.ReadFile(filepath.Join(b.dir, "pgbouncer.log"))
		os.RemoveAll(b.dir)
		return nil, fmt.Errorf("%w\n%s", err, log)
	}
	return b, nil
}

func (b *PgBouncer) start(ctx context.Context, bin string, cred *syscall.Credential, target string, opts PgBouncerOptions) error {
	conf := filepath.Join(b.dir, "pgbouncer.ini")
	users := filepath.Join(b.dir, "userlist.txt")
	ini := strings.Join([]string{
		"[databases]",
		"* = " + target,
		"[pgbouncer]",
		"listen_addr = 127.0.0.1",
		"listen_port = " + strconv.Itoa(b.port),
		"unix_socket_dir =",
		"auth_type = trust",
		"auth_file = " + users,
		"pool_mode = " + opts.PoolMode,
		"default_pool_size = " + strconv.Itoa(opts.PoolSize),
		"max_client_conn = 1000",
		"ignore_startup_parameters = extra_float_digits",
		"logfile = " + filepath.Join(b.dir, "pgbouncer.log"),
		"pidfile = " + filepath.Join(b.dir, "pgbouncer.pid"),
		"",
	}, "\n")
	userlist := fmt.Sprintf("%q %q\n", b.user, b.password)
	for name, data := range map[string]string{conf: ini, users: userlist} {
		if err := os.WriteFile(name, []byte(data), 0o644); err != nil {
			return err
		}
		if cred != nil {
			if err := os.Chown(name, int(cred.Uid), int(cred.Gid)); err != nil {
				return err
			}
		}
	}
	cmd := exec.Command(bin, conf)
	cmd.Dir = b.dir
	if cred != nil {
		cmd.SysProcAttr = &syscall.SysProcAttr{Credential: cred}
	}
	out, err := os.Create(filepath.Join(b.dir, "stderr.log"))
	if err != nil {
		return err
	}
	cmd.Stdout, cmd.Stderr = out, out
	if err := cmd.Start(); err != nil {
		out.Close()
		return fmt.Errorf("pgcluster: start pgbouncer: %w", err)
	}
	exited := make(chan struct{})
	go func() { _ = cmd.Wait(); out.Close(); close(exited) }()
	b.cmd, b.exited = cmd, exited
	addr := net.JoinHostPort("127.0.0.1", strconv.Itoa(b.port))
	deadline := time.Now().Add(15 * time.Second)
	for {
		c, err := net.DialTimeout("tcp", addr, 200*time.Millisecond)
		if err == nil {
			c.Close()
			return nil
		}
		select {
		case <-exited:
			errOut, _ := os.ReadFile(filepath.Join(b.dir, "stderr.log"))
			return fmt.Errorf("pgcluster: pgbouncer exited at start: %s", errOut)
		case <-ctx.Done():
			b.kill()
			return ctx.Err()
		case <-time.After(50 * time.Millisecond):
		}
		if time.Now().After(deadline) {
			b.kill()
			return errors.New("pgcluster: pgbouncer did not accept connections in 15s")
		}
	}
}

// DatabaseURL is the URL of database name through the pooler.
func (b *PgBouncer) DatabaseURL(name string) string {
	u := url.URL{Scheme: "postgres", Host: net.JoinHostPort("127.0.0.1", strconv.Itoa(b.port)), Path: "/" + name,
		RawQuery: "sslmode=disable"}
	if b.password != "" {
		u.User = url.UserPassword(b.user, b.password)
	} else {
		u.User = url.User(b.user)
	}
	return u.String()
}

// Rewrite returns databaseURL (a URL of the upstream server) pointed at the
// pooler instead, database name and parameters kept.
func (b *PgBouncer) Rewrite(databaseURL string) (string, error) {
	u, err := url.Parse(databaseURL)
	if err != nil {
		return "", err
	}
	u.Host = net.JoinHostPort("127.0.0.1", strconv.Itoa(b.port))
	return u.String(), nil
}

// Log is PgBouncer's log so far.
func (b *PgBouncer) Log() string {
	data, _ := os.ReadFile(filepath.Join(b.dir, "pgbouncer.log"))
	errOut, _ := os.ReadFile(filepath.Join(b.dir, "stderr.log"))
	return string(data) + string(errOut)
}

// Stop terminates PgBouncer and removes its directory.
func (b *PgBouncer) Stop() error {
	if b == nil {
		return nil
	}
	b.kill()
	return os.RemoveAll(b.dir)
}

func (b *PgBouncer) kill() {
	if b.cmd == nil || b.cmd.Process == nil {
		return
	}
	select {
	case <-b.exited:
		return
	default:
	}
	_ = b.cmd.Process.Signal(syscall.SIGTERM) // immediate shutdown (SIGINT would wait for clients)
	select {
	case <-b.exited:
	case <-time.After(5 * time.Second):
		_ = b.cmd.Process.Kill()
		<-b.exited
	}
}
