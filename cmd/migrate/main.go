// Command migrate applies the embedded migrations to PostgreSQL and creates
// new ones from the Ent schemas.
//
//	migrate up                 apply all pending versions
//	migrate down [N]           revert the last N versions (default 1)
//	migrate down-all           revert every version
//	migrate status | version   current version, latest, pending
//	migrate create [-dir D] NAME
//	                           write the next migration file from the Ent
//	                           schemas into D (default "migrations"), using
//	                           DEV_DATABASE_URL or a throwaway local cluster
//	migrate hash [-dir D]      rewrite D/atlas.sum after a hand edit
//
// Environment: DATABASE_URL (all but create and hash), APP_ENV
// (dev|stage|prod; prod refuses down and down-all).
package main

import (
	"context"
	"database/sql"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"strconv"
	"strings"
	"syscall"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/stdlib"

	"github.com/platform/tenant-registry/internal/devdb"
	"github.com/platform/tenant-registry/internal/migrate"
	"github.com/platform/tenant-registry/internal/pgcluster"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	err := run(ctx, os.Args[1:], os.Getenv, os.Stdout, os.Stderr)
	stop()
	if err != nil {
		fmt.Fprintln(os.Stderr, "migrate:", err)
		os.Exit(1)
	}
}

const usage = `usage: migrate up | down [N] | down-all | status | version | create [-dir DIR] NAME | hash [-dir DIR]`

func run(ctx context.Context, args []string, getenv func(string) string, stdout, stderr io.Writer) error {
	if len(args) == 0 {
		return errors.New(usage)
	}
	cmd, args := args[0], args[1:]
	switch cmd {
	case "create", "hash":
		fs := flag.NewFlagSet(cmd, flag.ContinueOnError)
		fs.SetOutput(stderr)
		dir := fs.String("dir", "migrations", "migration directory")
		if err := fs.Parse(args); err != nil {
			return err
		}
		if cmd == "hash" {
			if fs.NArg() != 0 {
				return errors.New(usage)
			}
			if err := devdb.Hash(*dir); err != nil {
				return err
			}
			fmt.Fprintf(stdout, "rewrote %s/atlas.sum\n", *dir)
			return nil
		}
		if fs.NArg() != 1 || fs.Arg(0) == "" {
			return errors.New("create needs exactly one NAME, e.g. `migrate create add_widgets`")
		}
		return create(ctx, getenv("DEV_DATABASE_URL"), *dir, fs.Arg(0), stdout)
	case "up", "down", "down-all", "status", "version":
	default:
		return fmt.Errorf("unknown command %q\n%s", cmd, usage)
	}

	n := 1
	if cmd == "down" && len(args) > 0 {
		var err error
		if n, err = strconv.Atoi(args[0]); err != nil || n < 1 {
			return fmt.Errorf("down: N must be a positive number, got %q", args[0])
		}
		args = args[1:]
	}
	if len(args) > 0 {
		return fmt.Errorf("%s: unexpected arguments %q\n%s", cmd, args, usage)
	}
	env := getenv("APP_ENV")
	switch env {
	case "", "dev", "stage", "prod":
	default:
		return fmt.Errorf("APP_ENV must be dev, stage or prod, got %q", env)
	}
	if env == "prod" && (cmd == "down" || cmd == "down-all") {
		return fmt.Errorf("%s refused: APP_ENV=prod; migrations are forward-only in production (write a new migration instead)", cmd)
	}
	db, err := open(ctx, getenv("DATABASE_URL"))
	if err != nil {
		return err
	}
	defer db.Close()

	switch cmd {
	case "up":
		applied, err := migrate.Up(ctx, db)
		for _, v := range applied {
			fmt.Fprintf(stdout, "applied %s\n", v)
		}
		if err != nil {
			return err
		}
		if len(applied) == 0 {
			fmt.Fprintln(stdout, "already at the latest version")
		}
		return nil
	case "down":
		if err := devdb.Down(ctx, db, n); err != nil {
			return err
		}
	case "down-all":
		if err := devdb.DownAll(ctx, db); err != nil {
			return err
		}
	}
	// status, version, and the state after a down.
	st, err := migrate.GetStatus(ctx, db)
	if err != nil {
		return err
	}
	cur := st.Current
	if cur == "" {
		cur = "none"
	}
	fmt.Fprintf(stdout, "current: %s\nlatest:  %s\n", cur, st.Latest)
	if len(st.Pending) > 0 {
		fmt.Fprintf(stdout, "pending: %s\n", strings.Join(st.Pending, " "))
	} else {
		fmt.Fprintln(stdout, "pending: none")
	}
	return nil
}

func open(ctx context.Context, dsn string) (*sql.DB, error) {
	if dsn == "" {
		return nil, errors.New("DATABASE_URL is not set (postgres://user:pass@host:5432/db)")
	}
	cfg, err := pgx.ParseConfig(dsn)
	if err != nil {
		return nil, fmt.Errorf("DATABASE_URL is invalid: %w", err)
	}
	db := stdlib.OpenDB(*cfg)
	if err := db.PingContext(ctx); err != nil {
		db.Close()
		return nil, fmt.Errorf("DATABASE_URL: cannot connect: %w", err)
	}
	return db, nil
}

func create(ctx context.Context, devURL, dir, name string, stdout io.Writer) error {
	if devURL == "" {
		c, err := pgcluster.Start(ctx, "")
		if err != nil {
			return fmt.Errorf("no DEV_DATABASE_URL and no local PostgreSQL to start: %w", err)
		}
		defer c.Stop()
		devURL = c.URL()
	}
	file, err := devdb.Diff(ctx, devURL, dir, name)
	if err != nil {
		return err
	}
	if file == "" {
		fmt.Fprintln(stdout, "no changes")
		return nil
	}
	fmt.Fprintln(stdout, file)
	return nil
}
