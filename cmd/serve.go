package cmd

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/signal"
)

// Serve runs the command file each time the process receives SIGUSR1, until
// ctx is done. Commands run one at a time on Serve's goroutine, so a slow
// handler delays the next command and Serve's return; signals that arrive
// while a command runs are merged into one more run.
//
// When ctx is done Serve stops watching the signal (signal.Stop), and if
// "cpuprof start" left CPU profiling running it stops it and writes
// fastway.cpu.prof, so a shutdown does not lose the profile. It returns nil,
// or the error from writing that profile. It returns ErrServing at once if
// the Interpreter is already serving, and an error wrapping
// errors.ErrUnsupported on systems without SIGUSR1. No goroutine is left
// behind.
func (i *Interpreter) Serve(ctx context.Context) error {
	if cmdSignal == nil {
		return fmt.Errorf("fastway: cmd: Serve: no SIGUSR1 on this system: %w", errors.ErrUnsupported)
	}
	if !i.serving.CompareAndSwap(false, true) {
		return ErrServing
	}
	defer i.serving.Store(false)

	sig := make(chan os.Signal, 1)
	signal.Notify(sig, cmdSignal)
	defer signal.Stop(sig)
	log := i.logger()
	log.Info("fastway: cmd: serving", "signal", cmdSignal.String(), "cmd_file", i.cfg.CmdFile)
	if i.testHookServing != nil {
		i.testHookServing()
	}
	for {
		select {
		case <-ctx.Done():
			signal.Stop(sig)
			if !i.cpuProfiling() {
				log.Info("fastway: cmd: stopped")
				return nil
			}
			res, err := i.stopCPUProfile()
			if err != nil {
				log.Error("fastway: cmd: stopped; CPU profile lost", "err", err)
				return err
			}
			log.Info("fastway: cmd: stopped; CPU profiling stopped", "result", res)
			return nil
		case <-sig:
			i.RunFile()
		}
	}
}
