"""The Flask application the WSGI benchmark serves on every server: hello, as JSON.

    gunicorn -k gthread --threads 4 wsgi_app:app
    python -m pymongoose --wsgi wsgi_app:app --threads 4
"""

from flask import Flask

app = Flask(__name__)


@app.get("/")
def hello():
    return {"message": "Hello, World!"}
