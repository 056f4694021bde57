// Package config loads audex's operator configuration: an optional YAML
// file (AUDEX_CONFIG) with environment variables winning over it. Every
// setting has a default, so nothing is needed for a first run. It imports
// no other audex package.
package config

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"os"
	"time"

	"gopkg.in/yaml.v3"
)

// Defaults of API.md.
const (
	DefaultDatabaseURL       = "postgres://postgres@127.0.0.1:5432/audex?sslmode=disable"
	DefaultListen            = "127.0.0.1:8080"
	DefaultRetentionInterval = 24 * time.Hour
)

// Config is the whole operator configuration.
type Config struct {
	DatabaseURL string `yaml:"database_url"`
	Listen      string `yaml:"listen"`
	// RetentionInterval is how often the retention job runs.
	RetentionInterval time.Duration `yaml:"retention_interval"`
	// CursorSecret overrides the cursor-signing secret that `api migrate`
	// stores in the database. Every replica must use the same one.
	CursorSecret string        `yaml:"-"`
	Destinations []Destination `yaml:"destinations"`
}

// Destination is an export destination that the operator configured.
type Destination struct {
	Name     string   `yaml:"name"`
	Type     string   `yaml:"type"`
	Bucket   string   `yaml:"bucket"`
	Prefix   string   `yaml:"prefix"`
	Region   string   `yaml:"region"`
	Endpoint string   `yaml:"endpoint"`
	Tenants  []string `yaml:"tenants"`
}

// Load reads the file named by AUDEX_CONFIG (if any) and then the
// environment, through getenv. Unknown keys and malformed values are
// errors that name them.
func Load(getenv func(string) string) (Config, error) {
	cfg := Config{
		DatabaseURL:       DefaultDatabaseURL,
		Listen:            DefaultListen,
		RetentionInterval: DefaultRetentionInterval,
		Destinations:      []Destination{{Name: "local", Type: "file", Bucket: "./data/exports"}},
	}
	if path := getenv("AUDEX_CONFIG"); path != "" {
		data, err := os.ReadFile(path)
		if err != nil {
			return cfg, fmt.Errorf("read AUDEX_CONFIG: %w", err)
		}
		if err := parseYAML(data, &cfg); err != nil {
			return cfg, fmt.Errorf("parse %s: %w", path, err)
		}
	}
	if v := getenv("DATABASE_URL"); v != "" {
		cfg.DatabaseURL = v
	}
	if v := getenv("AUDEX_LISTEN"); v != "" {
		cfg.Listen = v
	}
	if v := getenv("AUDEX_RETENTION_INTERVAL"); v != "" {
		d, err := time.ParseDuration(v)
		if err != nil {
			return cfg, fmt.Errorf("AUDEX_RETENTION_INTERVAL: %q is not a Go duration such as 24h", v)
		}
		cfg.RetentionInterval = d
	}
	cfg.CursorSecret = getenv("AUDEX_CURSOR_SECRET")
	return cfg, cfg.validate()
}

// parseYAML decodes the file strictly over the defaults in cfg.
func parseYAML(data []byte, cfg *Config) error {
	var file struct {
		DatabaseURL       *string        `yaml:"database_url"`
		Listen            *string        `yaml:"listen"`
		RetentionInterval *string        `yaml:"retention_interval"`
		Destinations      *[]Destination `yaml:"destinations"`
	}
	dec := yaml.NewDecoder(bytes.NewReader(data))
	dec.KnownFields(true)
	if err := dec.Decode(&file); err != nil && !errors.Is(err, io.EOF) {
		return err
	}
	if file.DatabaseURL != nil {
		cfg.DatabaseURL = *file.DatabaseURL
	}
	if file.Listen != nil {
		cfg.Listen = *file.Listen
	}
	if file.RetentionInterval != nil {
		d, err := time.ParseDuration(*file.RetentionInterval)
		if err != nil {
			return fmt.Errorf("retention_interval: %q is not a Go duration such as 24h", *file.RetentionInterval)
		}
		cfg.RetentionInterval = d
	}
	if file.Destinations != nil {
		cfg.Destinations = *file.Destinations
	}
	return nil
}

func (c Config) validate() error {
	if c.RetentionInterval < time.Minute {
		return errors.New("retention_interval must be at least 1m")
	}
	if c.CursorSecret != "" && len(c.CursorSecret) < 32 {
		return errors.New("AUDEX_CURSOR_SECRET must be at least 32 characters")
	}
	seen := map[string]bool{}
	for i, d := range c.Destinations {
		switch {
		case d.Name == "":
			return fmt.Errorf("destinations[%d]: name is required", i)
		case seen[d.Name]:
			return fmt.Errorf("destinations[%d]: name %q is used twice", i, d.Name)
		case d.Type != "s3" && d.Type != "gcs" && d.Type != "azure_blob" && d.Type != "file":
			return fmt.Errorf("destinations[%d] (%s): type must be s3, gcs, azure_blob or file", i, d.Name)
		case d.Bucket == "":
			return fmt.Errorf("destinations[%d] (%s): bucket is required", i, d.Name)
		}
		seen[d.Name] = true
	}
	return nil
}
