"""``dpsynth keys show-public`` -- the data owner's ledger-signing public key, for reviewers.

The private key (``$DPSYNTH_HOME/signing.key`` or ``DPSYNTH_SIGNING_KEY``) never leaves the
owner's machine and is never written into any output.
"""

from __future__ import annotations

import json

import typer

from dpsynth.cli.common import console

app = typer.Typer(help="The data owner's ledger-signing key.", no_args_is_help=True)


@app.command("show-public")
def show_public(as_json: bool = typer.Option(False, "--json", help="Print a JSON object.")) -> None:
    """Print the public key (64 hex digits) and key id that reviewers pass to `dpsynth ledger verify`."""
    from dpsynth.accounting.signing import Signer

    signer = Signer.owner()
    if as_json:
        typer.echo(json.dumps({"public_key": signer.public_key_hex, "key_id": signer.key_id, "scheme": "ed25519"}))
        return
    typer.echo(signer.public_key_hex)
    console.print(f"key id: {signer.key_id}  (give the line above to reviewers: dpsynth ledger verify OUT --public-key FILE)",
                  highlight=False)
