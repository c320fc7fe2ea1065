package cli

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"net/http"
	"strings"

	"golang.org/x/term"

	"github.com/updraft/updraft/internal/client"
	"github.com/updraft/updraft/internal/store"
)

// maxPasswordBytes bounds a password read from stdin.
const maxPasswordBytes = 1024

func userCommand() *command {
	return &command{
		name:  "user",
		short: "create operator accounts and set passwords",
		subs: []*command{
			userCreateCommand(),
			userListCommand(),
			userPasswdCommand(),
		},
	}
}

func userCreateCommand() *command {
	var (
		role          string
		passwordStdin bool
	)
	return &command{
		name:  "create",
		args:  "NAME",
		short: "create a user",
		help: `Without --password-stdin the server generates a one-time password, printed
once here; the user must change it at first sign-in.`,
		api: true,
		flags: func(fs *flag.FlagSet) {
			fs.StringVar(&role, "role", "", "`role`: admin, operator or viewer (required)")
			fs.BoolVar(&passwordStdin, "password-stdin", false, "read the password from stdin (from the terminal without echo)")
		},
		run: func(ctx context.Context, e *Env, args []string) error {
			if err := checkRole(role); err != nil {
				return err
			}
			in := client.NewUser{Name: args[0], Role: role}
			if passwordStdin {
				pw, err := e.readPassword("Password for "+args[0], true)
				if err != nil {
					return err
				}
				in.Password = pw
			}
			c, err := e.client()
			if err != nil {
				return err
			}
			u, err := c.CreateUser(ctx, in)
			if err != nil {
				return err
			}
			if e.json() {
				return e.printJSON(u)
			}
			if u.Password == "" {
				fmt.Fprintf(e.Stdout, "created %s user %s (id %s)\n", u.Role, u.Name, u.ID)
				return nil
			}
			fmt.Fprintf(e.Stderr, "created %s user %s (id %s); one-time password, shown only now:\n", u.Role, u.Name, u.ID)
			fmt.Fprintln(e.Stdout, u.Password)
			return nil
		},
	}
}

func userListCommand() *command {
	var page pageFlags
	return &command{
		name:  "list",
		short: "list users",
		api:   true,
		flags: func(fs *flag.FlagSet) { page.register(fs, "users") },
		run: func(ctx context.Context, e *Env, _ []string) error {
			if err := page.check(); err != nil {
				return err
			}
			c, err := e.client()
			if err != nil {
				return err
			}
			l, err := collect(ctx, page, c.ListUsers)
			if err != nil {
				return err
			}
			if e.json() {
				return e.printJSON(l)
			}
			tw := e.table()
			fmt.Fprintln(tw, "ID\tNAME\tROLE\tSTATUS\tCREATED")
			for _, u := range l.Items {
				status := "active"
				switch {
				case u.Disabled:
					status = "disabled"
				case u.MustChangePassword:
					status = "must change password"
				}
				fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\n", u.ID, u.Name, u.Role, status, fmtTime(u.CreatedAt))
			}
			if err := tw.Flush(); err != nil {
				return err
			}
			page.moreNote(e, l.Next, "users")
			return nil
		},
	}
}

func userPasswdCommand() *command {
	var current bool
	return &command{
		name:  "passwd",
		args:  "USER",
		short: "set a user's password",
		help: `USER is a user name or id. An admin sets another user's password, and that
user must change it at next use; changing your own password (the account
owning the token) needs the current one too (--current, or asked for on a
terminal).

On a terminal the passwords are read without echo, the new one twice.
Otherwise they are lines of stdin: the current password first (with
--current), then the new one:

  printf '%s\n' "$NEW_PASSWORD" | updraft user passwd alice
  printf '%s\n%s\n' "$OLD" "$NEW" | updraft user passwd --current alice`,
		api: true,
		flags: func(fs *flag.FlagSet) {
			fs.BoolVar(&current, "current", false, "change your own password: read the current one first")
		},
		run: func(ctx context.Context, e *Env, args []string) error {
			c, err := e.client()
			if err != nil {
				return err
			}
			id, name, err := findUser(ctx, c, args[0])
			if err != nil {
				return err
			}
			var req client.SetPasswordRequest
			if current {
				if req.CurrentPassword, err = e.readPassword("Current password of "+name, false); err != nil {
					return err
				}
			}
			if req.Password, err = e.readPassword("New password for "+name, true); err != nil {
				return err
			}
			err = c.SetPassword(ctx, id, req)
			if !current && needsCurrentPassword(err) {
				if _, tty := e.stdinIsTerminal(); !tty {
					return fmt.Errorf("%s is your own account: pass --current and give the current password on the first line of stdin, the new one on the second", name)
				}
				if req.CurrentPassword, err = e.readPassword("Current password of "+name, false); err != nil {
					return err
				}
				err = c.SetPassword(ctx, id, req)
			}
			if err != nil {
				return err
			}
			if e.json() {
				return e.printJSON(map[string]string{"id": id, "name": name, "password": "changed"})
			}
			fmt.Fprintf(e.Stdout, "password of %s changed\n", name)
			return nil
		},
	}
}

// needsCurrentPassword reports whether the server refused a password change
// because it is the caller's own and the current password was missing.
func needsCurrentPassword(err error) bool {
	var ae *client.APIError
	return errors.As(err, &ae) && ae.Status == http.StatusBadRequest &&
		strings.Contains(ae.Message, "current_password is required")
}

// findUser resolves a user name or id to (id, name). Listing users needs
// the admin role; for anyone else (changing their own password) the
// argument is taken as the id.
func findUser(ctx context.Context, c *client.Client, nameOrID string) (id, name string, err error) {
	l, err := collect(ctx, pageFlags{limit: store.MaxPageLimit, all: true}, c.ListUsers)
	var ae *client.APIError
	if errors.As(err, &ae) && ae.Status == http.StatusForbidden {
		return nameOrID, nameOrID, nil
	}
	if err != nil {
		return "", "", err
	}
	for _, u := range l.Items {
		if u.ID == nameOrID {
			return u.ID, u.Name, nil
		}
	}
	for _, u := range l.Items {
		if u.Name == nameOrID {
			return u.ID, u.Name, nil
		}
	}
	return "", "", fmt.Errorf("no user with name or id %q", nameOrID)
}

// readPassword reads a password: from the terminal without echo (twice
// when confirm is set, to catch typos); otherwise the next line of Stdin.
func (e *Env) readPassword(prompt string, confirm bool) (string, error) {
	if fd, ok := e.stdinIsTerminal(); ok {
		fmt.Fprintf(e.Stderr, "%s: ", prompt)
		a, err := term.ReadPassword(fd)
		fmt.Fprintln(e.Stderr)
		if err != nil {
			return "", fmt.Errorf("read password: %w", err)
		}
		if len(a) == 0 {
			return "", errors.New("empty password")
		}
		if confirm {
			fmt.Fprintf(e.Stderr, "Retype: ")
			b, err := term.ReadPassword(fd)
			fmt.Fprintln(e.Stderr)
			if err != nil {
				return "", fmt.Errorf("read password: %w", err)
			}
			if string(a) != string(b) {
				return "", errors.New("passwords do not match")
			}
		}
		return string(a), nil
	}
	line, err := e.readLine(maxPasswordBytes)
	if err != nil {
		return "", fmt.Errorf("read password from stdin: %w", err)
	}
	if line == "" {
		return "", errors.New("no password on stdin (give one per line)")
	}
	return line, nil
}

// readLine reads the next line of Stdin without its line ending; a line
// longer than max bytes is an error. Stdin is buffered once per run so that
// consecutive calls see consecutive lines.
func (e *Env) readLine(max int) (string, error) {
	if e.stdin == nil {
		e.stdin = bufio.NewReader(e.Stdin)
	}
	var b []byte
	for {
		c, err := e.stdin.ReadByte()
		if err == io.EOF {
			break
		}
		if err != nil {
			return "", err
		}
		if c == '\n' {
			break
		}
		if len(b) > max { // one spare byte for a '\r'
			return "", fmt.Errorf("line longer than %d bytes", max)
		}
		b = append(b, c)
	}
	b = bytes.TrimSuffix(b, []byte("\r"))
	if len(b) > max {
		return "", fmt.Errorf("line longer than %d bytes", max)
	}
	return string(b), nil
}
