package main

import (
	"archive/tar"
	"bytes"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path"
	"path/filepath"
	"slices"
	"strings"
	"time"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/empty"
	"github.com/google/go-containerregistry/pkg/v1/mutate"
	"github.com/google/go-containerregistry/pkg/v1/tarball"
	"github.com/google/go-containerregistry/pkg/v1/types"
)

// The image's user and the places it knows.
const (
	uid, gid   = 65532, 65532
	user       = "65532:65532"
	home       = "home/nonroot"
	caPath     = "/etc/ssl/certs/ca-certificates.crt"
	labelTitle = "org.opencontainers.image.title"
)

// spec is what one image is made of.
type spec struct {
	base       string // directory of base files (deploy/image)
	caCerts    string // CA bundle on the build host
	binary     string // the static binary
	entrypoint string // its absolute path in the image
	arch       string
	created    time.Time // every file's mtime and the config's Created
	labels     map[string]string
}

// build assembles the image: the base layer, the binary's layer, the config.
func build(s spec) (v1.Image, error) {
	base := newLayer(s.created)
	err := filepath.WalkDir(s.base, func(p string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		rel, err := filepath.Rel(s.base, p)
		if err != nil {
			return err
		}
		b, err := os.ReadFile(p)
		if err != nil {
			return err
		}
		base.file(filepath.ToSlash(rel), b, 0o644)
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("base %s: %w", s.base, err)
	}
	ca, err := os.ReadFile(s.caCerts)
	if err != nil {
		return nil, fmt.Errorf("CA certificates: %w", err)
	}
	base.file(strings.TrimPrefix(caPath, "/"), ca, 0o644)
	base.dir("tmp", 0o1777, 0, 0)
	base.dir(home, 0o755, uid, gid)

	bin, err := os.ReadFile(s.binary)
	if err != nil {
		return nil, fmt.Errorf("binary: %w", err)
	}
	app := newLayer(s.created)
	app.file(strings.TrimPrefix(s.entrypoint, "/"), bin, 0o755)

	img := mutate.MediaType(empty.Image, types.OCIManifestSchema1)
	img = mutate.ConfigMediaType(img, types.OCIConfigJSON)
	for _, l := range []struct {
		layer *layer
		what  string
	}{
		{base, "base: " + s.base + ", CA certificates"},
		{app, "binary: " + s.entrypoint},
	} {
		tl, err := l.layer.v1()
		if err != nil {
			return nil, err
		}
		img, err = mutate.Append(img, mutate.Addendum{
			Layer:     tl,
			MediaType: types.OCILayer,
			History:   v1.History{Created: v1.Time{Time: s.created}, CreatedBy: "cmd/image " + l.what},
		})
		if err != nil {
			return nil, fmt.Errorf("layer: %w", err)
		}
	}
	cf, err := img.ConfigFile()
	if err != nil {
		return nil, fmt.Errorf("config: %w", err)
	}
	cf = cf.DeepCopy()
	cf.OS, cf.Architecture = "linux", s.arch
	cf.Created = v1.Time{Time: s.created}
	cf.Config = v1.Config{
		User:       user,
		Entrypoint: []string{s.entrypoint},
		WorkingDir: "/",
		Env: []string{
			"PATH=/usr/local/bin",
			"SSL_CERT_FILE=" + caPath,
			"HOME=/" + home,
		},
		Labels: s.labels,
	}
	img, err = mutate.ConfigFile(img, cf)
	if err != nil {
		return nil, fmt.Errorf("config: %w", err)
	}
	return img, nil
}

// layer is a reproducible tar: every entry has one mtime and a fixed owner
// and mode, parents are added as directories, entries are sorted by name.
type layer struct {
	created time.Time
	entries map[string]*tar.Header
	data    map[string][]byte
}

func newLayer(created time.Time) *layer {
	return &layer{created: created, entries: map[string]*tar.Header{}, data: map[string][]byte{}}
}

func (l *layer) file(name string, b []byte, mode int64) {
	l.parents(name)
	l.entries[name] = l.header(name, tar.TypeReg, mode, 0, 0)
	l.entries[name].Size = int64(len(b))
	l.data[name] = b
}

func (l *layer) dir(name string, mode int64, uid, gid int) {
	l.parents(name)
	l.entries[name] = l.header(name+"/", tar.TypeDir, mode, uid, gid)
}

func (l *layer) parents(name string) {
	for d := path.Dir(name); d != "." && d != "/"; d = path.Dir(d) {
		if _, ok := l.entries[d]; !ok {
			l.entries[d] = l.header(d+"/", tar.TypeDir, 0o755, 0, 0)
		}
	}
}

func (l *layer) header(name string, typ byte, mode int64, uid, gid int) *tar.Header {
	return &tar.Header{
		Name:     name,
		Typeflag: typ,
		Mode:     mode,
		Uid:      uid,
		Gid:      gid,
		ModTime:  l.created,
		Format:   tar.FormatPAX,
	}
}

// bytes writes the tar.
func (l *layer) bytes() ([]byte, error) {
	var buf bytes.Buffer
	tw := tar.NewWriter(&buf)
	names := make([]string, 0, len(l.entries))
	for n := range l.entries {
		names = append(names, n)
	}
	slices.Sort(names)
	for _, n := range names {
		if err := tw.WriteHeader(l.entries[n]); err != nil {
			return nil, fmt.Errorf("tar %s: %w", n, err)
		}
		if _, err := tw.Write(l.data[n]); err != nil {
			return nil, fmt.Errorf("tar %s: %w", n, err)
		}
	}
	if err := tw.Close(); err != nil {
		return nil, err
	}
	return buf.Bytes(), nil
}

// v1 is the layer, gzip-compressed by go-containerregistry.
func (l *layer) v1() (v1.Layer, error) {
	b, err := l.bytes()
	if err != nil {
		return nil, err
	}
	return tarball.LayerFromOpener(func() (io.ReadCloser, error) {
		return io.NopCloser(bytes.NewReader(b)), nil
	}, tarball.WithMediaType(types.OCILayer))
}
