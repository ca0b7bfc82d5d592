"""`make dev`: the emulator and the Dagster UI together, until Ctrl-C.

The code location is pointed at the emulator; to work against the real Userflow run
`dg dev` yourself with USERFLOW_API_KEY (and USERFLOW_BASE_URL for the EU) set.
"""

import argparse
import os
import subprocess
import sys
from pathlib import Path

from userflow_assets.emulator import EmulatorConfig, running_emulator
from userflow_assets.settings import PROJECT_ROOT


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--port", type=int, default=3000, help="port of the Dagster UI")
    args = parser.parse_args()
    config = EmulatorConfig()
    with running_emulator(config) as base_url:
        env = {
            **os.environ,
            "DAGSTER_HOME": os.environ.get("DAGSTER_HOME", str(PROJECT_ROOT / ".dagster_home")),
            "USERFLOW_BASE_URL": base_url,
            "USERFLOW_API_KEY": config.api_key,
        }
        print(f"Userflow emulator: {base_url} (inspect it at {base_url}/__emulator/state)")
        print(f"Dagster UI:        http://127.0.0.1:{args.port}  (Ctrl-C stops both)", flush=True)
        dg_cli = str(Path(sys.executable).with_name("dg"))
        ui = subprocess.Popen(
            [dg_cli, "dev", "--host", "127.0.0.1", "--port", str(args.port)], cwd=PROJECT_ROOT, env=env
        )
        try:
            return ui.wait()
        except KeyboardInterrupt:
            ui.terminate()
            return ui.wait(timeout=60)


if __name__ == "__main__":
    sys.exit(main())
