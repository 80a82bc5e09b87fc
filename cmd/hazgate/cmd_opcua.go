package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"text/tabwriter"
	"time"

	"hazgate/drivers/opcua"
	"hazgate/internal/config"
)

const opcuaUsage = `usage: hazgate opcua endpoints URL [--save-cert DIR]
       hazgate opcua browse [security flags] URL [NODE]     (NODE default i=85, the Objects folder)
       hazgate opcua read   [security flags] URL NODE...
security flags: [--policy None|Basic256Sha256|Aes128_Sha256_RsaOaep|Aes256_Sha256_RsaPss] [--mode Sign|SignAndEncrypt]
                [--user NAME (--password-file FILE | --password-env VAR) | --user-cert FILE --user-key FILE]
                [--trust-dir DIR | --server-cert FILE]
                [--cert FILE --key FILE | --data-dir DIR (the gateway's generated certificate)] [--timeout 20s]`

// cmdOPCUA is the OPC UA commissioning tool: it shows a server's endpoints
// and certificate, browses its address space with node ids, types and
// values (what goes into a tag's node:), and reads nodes, with the
// driver's own security and trust checks.
// Exit 0: done; 1: the server could not be reached or read; 2: bad arguments.
func cmdOPCUA(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	if len(args) == 0 {
		fmt.Fprintln(stderr, opcuaUsage)
		return exitUsage
	}
	sub, args := args[0], args[1:]
	fs := flag.NewFlagSet("opcua "+sub, flag.ContinueOnError)
	fs.SetOutput(stderr)
	var o config.OPCUA
	fs.StringVar(&o.SecurityPolicy, "policy", config.OPCUAPolicyNone, "security policy")
	fs.StringVar(&o.SecurityMode, "mode", "", "security mode (default SignAndEncrypt with a policy, None without)")
	fs.StringVar(&o.Username, "user", "", "user name (default anonymous)")
	fs.StringVar(&o.PasswordFile, "password-file", "", "file holding the password")
	fs.StringVar(&o.PasswordEnv, "password-env", "", "environment variable holding the password")
	fs.StringVar(&o.UserCertFile, "user-cert", "", "log in with this X.509 user certificate")
	fs.StringVar(&o.UserKeyFile, "user-key", "", "its private key")
	fs.StringVar(&o.TrustDir, "trust-dir", "", "folder of trusted server certificates")
	fs.StringVar(&o.ServerCertFile, "server-cert", "", "the server's certificate, pinned")
	fs.StringVar(&o.CertFile, "cert", "", "the gateway's application certificate")
	fs.StringVar(&o.KeyFile, "key", "", "its private key")
	dataDir := fs.String("data-dir", config.DefaultDataDir, "the gateway's data directory (its generated certificate is in opcua/)")
	saveCert := fs.String("save-cert", "", "endpoints: write the server's certificate into this folder (a trust_dir)")
	timeout := fs.Duration("timeout", 20*time.Second, "give up after this long")
	// Flags may come before or after the URL and nodes.
	var pos []string
	for {
		if err := fs.Parse(args); err != nil {
			if errors.Is(err, flag.ErrHelp) {
				return exitOK
			}
			fmt.Fprintln(stderr, opcuaUsage)
			return exitUsage
		}
		if fs.NArg() == 0 {
			break
		}
		pos = append(pos, fs.Arg(0))
		args = fs.Args()[1:]
	}
	if len(pos) == 0 {
		fmt.Fprintf(stderr, "hazgate opcua %s: the endpoint URL is missing\n%s\n", sub, opcuaUsage)
		return exitUsage
	}
	url := pos[0]
	if !strings.HasPrefix(url, "opc.tcp://") {
		fmt.Fprintf(stderr, "hazgate opcua %s: %q is not an opc.tcp:// URL\n", sub, url)
		return exitUsage
	}
	if o.CertFile == "" {
		o.CertDir = filepath.Join(*dataDir, config.OPCUACertDir)
	}
	ctx, cancel := context.WithTimeout(ctx, *timeout)
	defer cancel()

	switch sub {
	case "endpoints":
		return opcuaEndpoints(ctx, url, *saveCert, stdout, stderr)
	case "browse":
		node := "i=85"
		if len(pos) > 2 {
			fmt.Fprintln(stderr, opcuaUsage)
			return exitUsage
		}
		if len(pos) == 2 {
			node = pos[1]
		}
		if _, err := config.ParseNodeID(node); err != nil {
			fmt.Fprintf(stderr, "hazgate opcua browse: %v\n", err)
			return exitUsage
		}
		c, err := opcua.Dial(ctx, url, o, nil)
		if err != nil {
			fmt.Fprintf(stderr, "hazgate opcua browse: %v\n", err)
			return exitFailure
		}
		defer c.Close()
		refs, err := c.Browse(ctx, node)
		if err != nil {
			fmt.Fprintf(stderr, "hazgate opcua browse: %v\n", err)
			return exitFailure
		}
		fmt.Fprintf(stdout, "%s %s: %d nodes\n", url, node, len(refs))
		tw := tabwriter.NewWriter(stdout, 0, 4, 2, ' ', 0)
		fmt.Fprintln(tw, "NODE\tCLASS\tNAME\tTYPE\tVALUE\tACCESS")
		for _, r := range refs {
			access := ""
			if r.Class == "Variable" {
				access = "read"
				if r.Writable {
					access = "read/write"
				}
			}
			fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\n", r.Node, r.Class, r.BrowseName, r.DataType, r.Value, access)
		}
		_ = tw.Flush()
		return exitOK
	case "read":
		nodes := pos[1:]
		if len(nodes) == 0 {
			fmt.Fprintf(stderr, "hazgate opcua read: no node to read\n%s\n", opcuaUsage)
			return exitUsage
		}
		for _, n := range nodes {
			if _, err := config.ParseNodeID(n); err != nil {
				fmt.Fprintf(stderr, "hazgate opcua read: %v\n", err)
				return exitUsage
			}
		}
		c, err := opcua.Dial(ctx, url, o, nil)
		if err != nil {
			fmt.Fprintf(stderr, "hazgate opcua read: %v\n", err)
			return exitFailure
		}
		defer c.Close()
		rs, err := c.Read(ctx, nodes)
		if err != nil {
			fmt.Fprintf(stderr, "hazgate opcua read: %v\n", err)
			return exitFailure
		}
		code := exitOK
		tw := tabwriter.NewWriter(stdout, 0, 4, 2, ' ', 0)
		fmt.Fprintln(tw, "NODE\tVALUE\tQUALITY\tSOURCE TIME\tSTATUS")
		for _, r := range rs {
			src := "-"
			if !r.Source.IsZero() {
				src = r.Source.UTC().Format(time.RFC3339Nano)
			}
			if r.Quality == "bad" {
				code = exitFailure
			}
			fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\n", r.Node, r.Value, r.Quality, src, r.Status)
		}
		_ = tw.Flush()
		return code
	}
	fmt.Fprintf(stderr, "hazgate opcua: unknown subcommand %q\n%s\n", sub, opcuaUsage)
	return exitUsage
}

func opcuaEndpoints(ctx context.Context, url, saveDir string, stdout, stderr io.Writer) int {
	eps, err := opcua.Endpoints(ctx, url)
	if err != nil {
		fmt.Fprintf(stderr, "hazgate opcua endpoints: %v\n", err)
		return exitFailure
	}
	saved := map[string]bool{}
	for _, e := range eps {
		fmt.Fprintf(stdout, "%s  %s/%s  login: %s\n", e.URL, e.Policy, e.Mode, strings.Join(e.UserTokens, ", "))
		if e.CertificateThumb == "" {
			continue
		}
		fmt.Fprintf(stdout, "    server certificate %s, SHA-1 thumbprint %s\n", e.CertificateSubject, e.CertificateThumb)
		if saveDir != "" && !saved[e.CertificateThumb] {
			saved[e.CertificateThumb] = true
			if err := os.MkdirAll(saveDir, 0o755); err != nil {
				fmt.Fprintf(stderr, "hazgate opcua endpoints: %v\n", err)
				return exitFailure
			}
			path := filepath.Join(saveDir, e.CertificateThumb+".der")
			if err := os.WriteFile(path, e.Certificate, 0o644); err != nil {
				fmt.Fprintf(stderr, "hazgate opcua endpoints: %v\n", err)
				return exitFailure
			}
			fmt.Fprintf(stdout, "    saved to %s: compare the thumbprint with the server's own display before trusting it\n", path)
		}
	}
	return exitOK
}
