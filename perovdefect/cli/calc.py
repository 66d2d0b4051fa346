import click

@click.command()
def parse(): pass
@click.command()
def levels(): pass
