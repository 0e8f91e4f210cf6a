// Loads a compose file with compose-go, the loader of Docker Compose v2, and prints the
// project as Compose v2 would run it (services in order), or the loader's error.
package main

import (
	"context"
	"fmt"
	"os"
	"sort"

	"github.com/compose-spec/compose-go/v2/cli"
)

func main() {
	if len(os.Args) != 2 {
		fmt.Fprintln(os.Stderr, "usage: compose_check <compose file>")
		os.Exit(2)
	}
	options, err := cli.NewProjectOptions([]string{os.Args[1]},
		cli.WithName("ates"), cli.WithOsEnv, cli.WithDotEnv)
	if err == nil {
		var project interface{ ServiceNames() []string }
		project, err = cli.ProjectFromOptions(context.Background(), options)
		if err == nil {
			names := project.ServiceNames()
			sort.Strings(names)
			for _, name := range names {
				fmt.Println(name)
			}
			return
		}
	}
	fmt.Fprintln(os.Stderr, err)
	os.Exit(1)
}
