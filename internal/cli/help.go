package cli

import (
	"context"
	"flag"
	"fmt"
	"io"
	"strings"
	"text/tabwriter"
)

// help runs "updraft [group] help [command...]".
func (e *Env) help(_ context.Context, cmd *command, path string, args []string) error {
	for _, name := range args {
		if len(cmd.subs) == 0 {
			break
		}
		sub := cmd.find(name)
		if sub == nil {
			e.cmd, e.path = cmd, path
			return usageErrorf("unknown command %q", strings.TrimPrefix(path+" "+name, "updraft "))
		}
		cmd, path = sub, path+" "+name
	}
	if len(cmd.subs) > 0 {
		e.printGroupHelp(e.Stdout, cmd, path)
		return nil
	}
	e.printHelp(e.Stdout, cmd, path)
	return nil
}

// synopsis is the one-line usage of a leaf command.
func (e *Env) synopsis(cmd *command, path string) string {
	var b strings.Builder
	b.WriteString(path)
	fs := e.flagSet(cmd)
	hasOwn := false
	fs.VisitAll(func(f *flag.Flag) {
		if !isGlobalFlag(f.Name) {
			hasOwn = true
		}
	})
	if hasOwn {
		b.WriteString(" [flags]")
	}
	if cmd.args != "" {
		b.WriteByte(' ')
		b.WriteString(cmd.args)
	}
	return b.String()
}

// printHelp prints a leaf command's usage, description and flags.
func (e *Env) printHelp(w io.Writer, cmd *command, path string) {
	if cmd == nil {
		return
	}
	if len(cmd.subs) > 0 {
		e.printGroupHelp(w, cmd, path)
		return
	}
	fmt.Fprintf(w, "Usage: %s\n\n", e.synopsis(cmd, path))
	if cmd.short != "" {
		fmt.Fprintf(w, "%s.\n", upperFirst(cmd.short))
	}
	if cmd.help != "" {
		fmt.Fprintf(w, "\n%s\n", strings.TrimSpace(cmd.help))
	}
	fs := e.flagSet(cmd)
	var own, global []*flag.Flag
	fs.VisitAll(func(f *flag.Flag) {
		if isGlobalFlag(f.Name) {
			global = append(global, f)
		} else {
			own = append(own, f)
		}
	})
	if len(own) > 0 {
		fmt.Fprintf(w, "\nFlags:\n")
		printFlags(w, own)
	}
	if len(global) > 0 {
		fmt.Fprintf(w, "\nGlobal flags:\n")
		printFlags(w, global)
	}
}

// printGroupHelp lists the subcommands of a group (or of updraft itself).
func (e *Env) printGroupHelp(w io.Writer, cmd *command, path string) {
	if path == "updraft" {
		fmt.Fprintf(w, "Updraft is an over-the-air firmware update server.\n\n")
		fmt.Fprintf(w, "Usage: updraft [global flags] <command> [arguments]\n\n")
	} else {
		fmt.Fprintf(w, "Usage: %s <command> [arguments]\n\n", path)
		if cmd.help != "" {
			fmt.Fprintf(w, "%s\n\n", strings.TrimSpace(cmd.help))
		}
	}
	fmt.Fprintf(w, "Commands:\n")
	tw := tabwriter.NewWriter(w, 0, 8, 2, ' ', 0)
	for _, s := range cmd.subs {
		fmt.Fprintf(tw, "  %s\t%s\n", s.name, s.short)
	}
	if path == "updraft" {
		fmt.Fprintf(tw, "  help\tshow help for a command\n")
	}
	tw.Flush()
	if path == "updraft" {
		fmt.Fprintf(w, "\nGlobal flags:\n")
		fs := newFlagSet("updraft")
		e.global.register(fs)
		var fl []*flag.Flag
		fs.VisitAll(func(f *flag.Flag) { fl = append(fl, f) })
		printFlags(w, fl)
	}
	fmt.Fprintf(w, "\nRun '%s <command> --help' for details of a command.\n", path)
}

// printFlags prints flags as "  --name VALUE  usage (default x)", with the
// one-letter alias of a flag folded into its long form.
func printFlags(w io.Writer, flags []*flag.Flag) {
	tw := tabwriter.NewWriter(w, 0, 8, 2, ' ', 0)
	for _, f := range flags {
		if f.Name == "o" {
			continue // shown with --output
		}
		name, usage := flag.UnquoteUsage(f)
		flagName := "--" + f.Name
		if f.Name == "output" {
			flagName = "-o, --output"
		}
		if name != "" {
			flagName += " " + name
		}
		if f.DefValue != "" && f.DefValue != "false" && f.DefValue != "0" {
			usage += fmt.Sprintf(" (default %s)", f.DefValue)
		}
		fmt.Fprintf(tw, "  %s\t%s\n", flagName, usage)
	}
	tw.Flush()
}

func upperFirst(s string) string {
	if s == "" {
		return s
	}
	return strings.ToUpper(s[:1]) + s[1:]
}
