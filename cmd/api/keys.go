package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"regexp"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/audex-dev/audex"
	"github.com/audex-dev/audex/internal/config"
	"github.com/audex-dev/audex/internal/store"
)

// tenantPattern is what a tenant id may be.
var tenantPattern = regexp.MustCompile(`^[A-Za-z0-9_.-]{1,64}$`)

func keys(ctx context.Context, cfg config.Config, args []string, stdout io.Writer) error {
	if len(args) == 0 {
		return errors.New("keys: want create, list, revoke or check\n" + usage)
	}
	sub, args := args[0], args[1:]
	pool, err := openMigrated(ctx, cfg)
	if err != nil {
		return err
	}
	defer pool.Close()
	switch sub {
	case "create":
		fs := newFlagSet("keys create")
		tenant := fs.String("tenant", "", "tenant the key belongs to")
		scopes := fs.String("scopes", "", "comma-separated scopes")
		name := fs.String("name", "", "a name for people")
		if err := fs.Parse(args); err != nil {
			return fmt.Errorf("keys create: %w", err)
		}
		if fs.NArg() > 0 {
			return fmt.Errorf("keys create: unexpected argument %q", fs.Arg(0))
		}
		if !tenantPattern.MatchString(*tenant) {
			return errors.New("keys create: --tenant is required: 1 to 64 characters of A-Z a-z 0-9 _ . -")
		}
		var list []string
		for _, s := range strings.Split(*scopes, ",") {
			if !audex.ValidScope(s) {
				return fmt.Errorf("keys create: unknown scope %q (scopes: %s)", s, strings.Join(audex.AllScopes, ", "))
			}
			list = append(list, s)
		}
		plain, hash := audex.NewPlainKey()
		if _, err := store.CreateAPIKey(ctx, pool, *tenant, *name, list, hash); err != nil {
			return err
		}
		fmt.Fprintln(stdout, plain)
		return nil
	case "list":
		fs := newFlagSet("keys list")
		tenant := fs.String("tenant", "", "only this tenant's keys")
		if err := fs.Parse(args); err != nil {
			return fmt.Errorf("keys list: %w", err)
		}
		var list []audex.APIKey
		var err error
		if *tenant == "" {
			list, err = store.ListAllAPIKeys(ctx, pool)
		} else {
			list, err = store.ListAPIKeys(ctx, pool, *tenant)
		}
		if err != nil {
			return err
		}
		tw := tabwriter.NewWriter(stdout, 0, 4, 2, ' ', 0)
		fmt.Fprintln(tw, "ID\tTENANT\tNAME\tSCOPES\tCREATED\tLAST USED\tREVOKED")
		for _, k := range list {
			fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\t%s\n", k.ID, k.TenantID, k.Name, strings.Join(k.Scopes, ","),
				k.CreatedAt.Format(time.RFC3339), timeOrDash(k.LastUsedAt), timeOrDash(k.RevokedAt))
		}
		return tw.Flush()
	case "revoke", "check":
		if len(args) != 1 {
			return fmt.Errorf("keys %s: want exactly one KEY_OR_ID", sub)
		}
		if sub == "check" {
			key, err := store.APIKeyByHash(ctx, pool, audex.HashKey(args[0]))
			if errors.Is(err, store.ErrNotFound) || err == nil && key.RevokedAt != nil {
				return errors.New("keys check: the key is unknown or revoked")
			}
			return err
		}
		key, err := store.RevokeAPIKey(ctx, pool, args[0], audex.HashKey(args[0]))
		if errors.Is(err, store.ErrNotFound) {
			return errors.New("keys revoke: no key has that id or value")
		}
		if err != nil {
			return err
		}
		fmt.Fprintf(stdout, "revoked %s (tenant %s)\n", key.ID, key.TenantID)
		return nil
	}
	return fmt.Errorf("keys: unknown subcommand %q\n%s", sub, usage)
}

func timeOrDash(t *time.Time) string {
	if t == nil {
		return "-"
	}
	return t.UTC().Format(time.RFC3339)
}
