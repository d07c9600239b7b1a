package main

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"io"
	"os"

	"golang.org/x/sys/unix"

	"edgebroker/session/auth"
)

// runPasswd is `edgebroker passwd FILE USER`: adds or updates USER in a Mosquitto-format
// password file. The password is read from the terminal (asked twice, not echoed) or, when
// standard input is not a terminal, from its first line; never from the command line, where
// other users could see it.
func runPasswd(args []string) error {
	if len(args) != 2 {
		return errors.New("usage: edgebroker passwd FILE USER (the password is read from the terminal or standard input)")
	}
	file, user := args[0], args[1]
	pw, err := readPassword(os.Stdin, os.Stderr)
	if err != nil {
		return err
	}
	if err := auth.SetPassword(file, user, pw); err != nil {
		return err
	}
	fmt.Fprintf(os.Stderr, "password of %s set in %s\n", user, file)
	return nil
}

// readPassword reads a password from in: with echo off and confirmed when in is a terminal.
func readPassword(in *os.File, prompt io.Writer) ([]byte, error) {
	fd := int(in.Fd())
	old, err := unix.IoctlGetTermios(fd, unix.TCGETS)
	if err != nil { // not a terminal
		return readLine(bufio.NewReader(in))
	}
	quiet := *old
	quiet.Lflag &^= unix.ECHO
	if err := unix.IoctlSetTermios(fd, unix.TCSETS, &quiet); err != nil {
		return nil, fmt.Errorf("passwd: %w", err)
	}
	defer unix.IoctlSetTermios(fd, unix.TCSETS, old)
	r := bufio.NewReader(in)
	fmt.Fprint(prompt, "Password: ")
	first, err := readLine(r)
	fmt.Fprint(prompt, "\nPassword again: ")
	if err != nil {
		return nil, err
	}
	second, err := readLine(r)
	fmt.Fprintln(prompt)
	if err != nil {
		return nil, err
	}
	if !bytes.Equal(first, second) {
		return nil, errors.New("passwd: the passwords do not match")
	}
	return first, nil
}

// readLine reads one line without its line ending; an empty password is refused.
func readLine(r *bufio.Reader) ([]byte, error) {
	line, err := r.ReadBytes('\n')
	if err != nil && !(errors.Is(err, io.EOF) && len(line) > 0) {
		return nil, fmt.Errorf("passwd: reading the password: %w", err)
	}
	line = bytes.TrimRight(line, "\r\n")
	if len(line) == 0 {
		return nil, errors.New("passwd: empty password")
	}
	return line, nil
}
