// Command image writes a docker-loadable OCI image of one Go command as a
// tarball, without a container daemon (go-containerregistry):
//
//	image -package ./cmd/server -tag tenant-registry:dev -out bin/images/tenant-registry.tar \
//	      -created 1796163754 -label org.opencontainers.image.revision=abc123 …
//
// The image is two layers: a base made of the files under -base (default
// deploy/image: /etc/passwd, /etc/group with the non-root user 65532
// nonroot) and the build host's CA certificates, then the static binary at
// /usr/local/bin/<repository name> (or -entrypoint). The config runs it as
// 65532:65532. Every tar entry has the -created time, owner root (the home
// directory excepted), a fixed mode, and the entries are sorted, so one
// commit built twice on one host gives one digest. The digest (of the OCI
// manifest, what a registry answers for the image pushed as it is) is
// written next to the tarball (NAME.digest) and printed with the image id
// (the config's digest, what `docker load` and `docker images` show).
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path"
	"path/filepath"
	"runtime"
	"strings"
	"time"

	"github.com/google/go-containerregistry/pkg/name"
	"github.com/google/go-containerregistry/pkg/v1/tarball"
)

func main() {
	if err := run(context.Background(), os.Args[1:], os.Stdout); err != nil {
		fmt.Fprintln(os.Stderr, "image:", err)
		os.Exit(1)
	}
}

func run(ctx context.Context, args []string, stdout io.Writer) error {
	fs := flag.NewFlagSet("image", flag.ContinueOnError)
	pkg := fs.String("package", "", "Go package to build into the image, e.g. ./cmd/server (or give -binary)")
	binary := fs.String("binary", "", "a static linux binary built already (instead of -package)")
	out := fs.String("out", "", "the tarball to write (required); the digest goes to the same name with .digest")
	ref := fs.String("tag", "", "image reference, e.g. tenant-registry:dev (required)")
	entry := fs.String("entrypoint", "", "path of the binary in the image (default /usr/local/bin/<repository name>)")
	base := fs.String("base", "deploy/image", "directory whose files form the base layer")
	caCerts := fs.String("ca-certs", "/etc/ssl/certs/ca-certificates.crt", "CA bundle copied to "+caPath)
	arch := fs.String("arch", runtime.GOARCH, "GOARCH of the binary and the image")
	created := fs.Int64("created", 0, "Unix time of every file and of the config (e.g. git log -1 --format=%ct)")
	labels := labelFlag{}
	fs.Var(labels, "label", "KEY=VALUE config label (repeatable)")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if fs.NArg() != 0 || *out == "" || *ref == "" || (*pkg == "") == (*binary == "") {
		return errors.New("usage: image (-package PKG | -binary FILE) -tag NAME:TAG -out FILE.tar [-label K=V]…")
	}
	tag, err := name.NewTag(*ref, name.WeakValidation)
	if err != nil {
		return fmt.Errorf("-tag: %w", err)
	}
	if *entry == "" {
		*entry = "/usr/local/bin/" + path.Base(tag.RepositoryStr())
	}
	if _, ok := labels[labelTitle]; !ok {
		labels[labelTitle] = path.Base(tag.RepositoryStr())
	}
	if *binary == "" {
		*binary = filepath.Join(os.TempDir(), fmt.Sprintf("image-%d-%s", os.Getpid(), path.Base(tag.RepositoryStr())))
		defer os.Remove(*binary)
		if err := goBuild(ctx, *pkg, *binary, *arch); err != nil {
			return err
		}
	}
	img, err := build(spec{
		base:       *base,
		caCerts:    *caCerts,
		binary:     *binary,
		entrypoint: *entry,
		arch:       *arch,
		created:    time.Unix(*created, 0).UTC(),
		labels:     labels,
	})
	if err != nil {
		return err
	}
	digest, err := img.Digest()
	if err != nil {
		return fmt.Errorf("digest: %w", err)
	}
	if err := os.MkdirAll(filepath.Dir(*out), 0o755); err != nil {
		return err
	}
	if err := tarball.WriteToFile(*out, tag, img); err != nil {
		return fmt.Errorf("write %s: %w", *out, err)
	}
	digestFile := strings.TrimSuffix(*out, ".tar") + ".digest"
	if err := os.WriteFile(digestFile, []byte(digest.String()+"\n"), 0o644); err != nil {
		return err
	}
	id, err := img.ConfigName()
	if err != nil {
		return fmt.Errorf("image id: %w", err)
	}
	fmt.Fprintf(stdout, "%s %s digest %s id %s\n", *out, tag.String(), digest, id)
	return nil
}

// buildFlags are the go build flags of an image's binary: static, no paths
// of the build host, no build id or VCS stamp (the labels carry the
// revision), so one commit compiles to the same bytes.
var buildFlags = []string{"-trimpath", "-buildvcs=false", "-ldflags=-s -w -buildid="}

// goBuild compiles pkg for linux/arch into out.
func goBuild(ctx context.Context, pkg, out, arch string) error {
	cmd := exec.CommandContext(ctx, "go", append(append([]string{"build"}, buildFlags...), "-o", out, pkg)...)
	cmd.Env = append(os.Environ(), "CGO_ENABLED=0", "GOOS=linux", "GOARCH="+arch)
	if b, err := cmd.CombinedOutput(); err != nil {
		return fmt.Errorf("go build %s: %w\n%s", pkg, err, b)
	}
	return nil
}

// labelFlag collects -label KEY=VALUE.
type labelFlag map[string]string

func (l labelFlag) String() string { return fmt.Sprint(map[string]string(l)) }

func (l labelFlag) Set(s string) error {
	k, v, ok := strings.Cut(s, "=")
	if !ok || k == "" {
		return fmt.Errorf("want KEY=VALUE, got %q", s)
	}
	l[k] = v
	return nil
}
