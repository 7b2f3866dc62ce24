// Package config is mirrorline's configuration: the schema of the YAML file
// given with -c (File and one type per section), every default the file
// and the flags start from (Default), strict loading that names the YAML
// path, the line and the closest known key of anything wrong (Load), the
// keys a file set (File.Set), validation per section naming the YAML path
// and the flag of each bad value (File.Validate), and the command-line
// flags bound to the same fields (the BindFlags methods, from the fields'
// flag and help tags), so that a flag's name, default and help exist once.
//
// Precedence is: the defaults, then the file, then MIRRORLINE_* variables,
// then flags. The corpus in testdata/ holds good configurations, which
// must load and validate, and bad ones, each with the one-line error it
// must give.
package config
