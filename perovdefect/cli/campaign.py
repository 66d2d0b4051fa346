import click

@click.group()
def campaign(): pass
