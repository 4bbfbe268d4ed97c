"""The Chalice app: registers the blueprints, the access log, the back channel's CORS, the SnapStart hooks."""

from chalice import Chalice

from chalicelib import jobs, snapstart
from chalicelib.settings import validate_at_start
from chalicelib.web import api as resource_api
from chalicelib.web import assets, cors, home, methods, wellknown
from chalicelib.web import authorize as authorize_pages
from chalicelib.web import deadline as request_deadline
from chalicelib.web import developer as developer_pages
from chalicelib.web import lifecycle as token_lifecycle
from chalicelib.web import logging as access_logging
from chalicelib.web import registration as registration_endpoint
from chalicelib.web import token as token_endpoint
from chalicelib.web import userinfo as userinfo_endpoint

validate_at_start()
snapstart.register()  # no-op outside the Lambda runtime

app = Chalice(app_name="clipron-oauth")
app.register_middleware(access_logging.access_log, "http")
app.register_middleware(request_deadline.request_deadline, "http")
app.register_blueprint(wellknown.bp)
app.register_blueprint(assets.bp)
app.register_blueprint(token_lifecycle.bp)
app.register_blueprint(resource_api.bp)
app.register_blueprint(token_endpoint.bp)
app.register_blueprint(jobs.bp)
app.register_blueprint(authorize_pages.bp)
app.register_blueprint(registration_endpoint.bp)
app.register_blueprint(developer_pages.bp)
app.register_blueprint(userinfo_endpoint.bp)
app.register_blueprint(home.bp)  # `/` and the 404 for every unknown path
methods.answer_every_method(app)  # after every blueprint: a known path's other methods get our 405
cors.allow_back_channel(app)  # after every blueprint: the rule covers all their routes
