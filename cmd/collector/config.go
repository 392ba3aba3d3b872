package main

import (
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"os"
	"strings"
	"time"
)

// config is every collector flag, parsed once in main: one struct per
// component, each defining its own flags and checking them (Validate);
// config.Validate adds the checks that span components.
type config struct {
	ingestConfig
	apiConfig
	storageConfig
	graphConfig
	detectConfig
	brokersConfig
	securityConfig
	demoConfig
	changesConfig
	sloConfig

	LogLevel   slog.Level
	ConfigFile string

	// file is the --config file, loaded and validated by parseConfig.
	file fileConfig
	// getenv reads secrets named in the config file.
	getenv func(string) string
}

// errHelp is returned by parseConfig when -h or -help was asked for.
var errHelp = flag.ErrHelp

// envPrefix is prepended to upper-cased flag names (dashes become
// underscores) to form the environment variable a flag also reads.
const envPrefix = "CARTOGRAPH_"

// newFlagSet defines the collector's flags on a fresh FlagSet writing into c.
func newFlagSet(c *config, out io.Writer) *flag.FlagSet {
	fs := flag.NewFlagSet("collector", flag.ContinueOnError)
	fs.SetOutput(out)
	for _, g := range []interface{ flags(*flag.FlagSet) }{&c.ingestConfig, &c.apiConfig, &c.storageConfig, &c.graphConfig, &c.detectConfig, &c.brokersConfig, &c.securityConfig, &c.demoConfig, &c.changesConfig, &c.sloConfig} {
		g.flags(fs)
	}
	fs.TextVar(&c.LogLevel, "log-level", slog.LevelInfo, "log level: debug, info, warn, error")
	fs.StringVar(&c.ConfigFile, "config", "", "YAML file with detector thresholds and broker pollers (see docs/configuration.md)")
	return fs
}

// parseConfig parses args, then fills every flag not given on the command
// line from its CARTOGRAPH_* environment variable.
func parseConfig(args []string, getenv func(string) string, out io.Writer) (config, error) {
	var c config
	fs := newFlagSet(&c, out)
	version := fs.Bool("version", false, "print the version, VCS revision and build time, then exit")
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return c, errHelp
		}
		return c, err
	}
	if *version {
		return c, errVersion
	}
	if fs.NArg() > 0 {
		return c, fmt.Errorf("unexpected arguments: %q", fs.Args())
	}
	set := map[string]bool{}
	fs.Visit(func(f *flag.Flag) { set[f.Name] = true })
	var errs []error
	fs.VisitAll(func(f *flag.Flag) {
		if set[f.Name] || f.Name == "version" {
			return
		}
		env := envName(f.Name)
		if v := getenv(env); v != "" {
			if err := f.Value.Set(v); err != nil {
				errs = append(errs, fmt.Errorf("%s=%q: %w", env, v, err))
			}
			set[f.Name] = true
		}
	})
	if err := errors.Join(errs...); err != nil {
		return c, err
	}
	if c.Demo {
		if err := applyDemoDefaults(fs, set); err != nil {
			return c, err
		}
	}
	if !set["idle-expiry"] {
		// The default follows a long window: nothing of the window may
		// leave memory. Set explicitly, it is checked instead.
		c.IdleExpiry = max(c.IdleExpiry, minIdleExpiry(c.graphConfig))
	}
	if err := c.Validate(); err != nil {
		return c, err
	}
	c.getenv = getenv
	var err error
	c.file, err = loadFileConfig(c.ConfigFile)
	if err == nil {
		err = c.sloConfig.load()
	}
	return c, err
}

// minIdleExpiry is the shortest --idle-expiry c allows: the window plus
// two buckets, and three pair TTLs.
func minIdleExpiry(c graphConfig) time.Duration {
	bucket := c.Bucket
	if bucket == 0 {
		bucket = max(c.Window/12, time.Second)
	}
	return max(c.Window+2*bucket, 3*c.PairTTL)
}

func envName(flagName string) string {
	return envPrefix + strings.ToUpper(strings.ReplaceAll(flagName, "-", "_"))
}

// Validate checks every component's flags, then those that span
// components.
func (c config) Validate() error {
	errs := []error{c.ingestConfig.Validate(), c.apiConfig.Validate(), c.storageConfig.Validate(), c.graphConfig.Validate(),
		c.detectConfig.Validate(), c.brokersConfig.Validate(), c.securityConfig.Validate(), c.demoConfig.Validate(), c.changesConfig.Validate(), c.sloConfig.Validate()}
	if lo := minIdleExpiry(c.graphConfig); c.IdleExpiry < lo {
		errs = append(errs, fmt.Errorf("--idle-expiry %v must be at least %v (--window plus two buckets, and 3x --pair-ttl)", c.IdleExpiry, lo))
	}
	if c.RawSpansOneIn > 0 && c.Storage != storageClickHouse {
		errs = append(errs, errors.New("--raw-spans-sample-one-in needs --storage clickhouse: the embedded store keeps no raw spans"))
	}
	if c.Demo {
		if c.Storage == storageClickHouse {
			errs = append(errs, errors.New("--demo refuses --storage clickhouse: its data is synthetic and must not reach shared, production storage (use the embedded store)"))
		}
		if c.Detect != detectLocal {
			errs = append(errs, fmt.Errorf("--demo needs --detect local (not %q): it shows this collector's own findings", c.Detect))
		}
	}
	return errors.Join(errs...)
}

func lookupEnv(k string) string { return os.Getenv(k) }
