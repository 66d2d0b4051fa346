import click

@click.group()
def photons(): pass
