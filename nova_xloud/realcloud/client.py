# Licensed under the Apache License, Version 2.0 (the "License"); you may
# not use this file except in compliance with the License. You may obtain
# a copy of the License at
#
#      http://www.apache.org/licenses/LICENSE-2.0
#
# Unless required by applicable law or agreed to in writing, software
# distributed under the License is distributed on an "AS IS" BASIS, WITHOUT
# WARRANTIES OR CONDITIONS OF ANY KIND, either express or implied. See the
# License for the specific language governing permissions and limitations
# under the License.

"""A small HTTP client that talks to the cloud as an admin would."""

import json
import urllib.error
import urllib.request


class Response(object):
    def __init__(self, status, body, headers):
        self.status = status
        self.body = body
        self.headers = headers

    def __repr__(self):
        return '<%d %s>' % (self.status, self.body)


def request(method, url, body=None, headers=None, raw=None, timeout=120):
    """(status, parsed JSON or text, headers) of one request."""
    headers = dict(headers or {})
    data = raw
    if body is not None:
        data = json.dumps(body).encode()
        headers.setdefault('Content-Type', 'application/json')
    req = urllib.request.Request(url, data=data, method=method,
                                 headers=headers)
    try:
        with urllib.request.urlopen(req, timeout=timeout) as resp:
            status, text, got = resp.status, resp.read(), resp.headers
    except urllib.error.HTTPError as exc:
        status, text, got = exc.code, exc.read(), exc.headers
    text = text.decode('utf-8', 'replace')
    try:
        parsed = json.loads(text) if text else None
    except ValueError:
        parsed = text
    return Response(status, parsed, got)


class Session(object):
    """A project-scoped token and the catalog that came with it."""

    def __init__(self, auth_url, user, password, project):
        self.auth_url = auth_url
        self.user, self.password, self.project = user, password, project
        self.token = None
        self.catalog = {}
        self.authenticate()

    def authenticate(self):
        body = {'auth': {
            'identity': {'methods': ['password'], 'password': {'user': {
                'name': self.user, 'domain': {'id': 'default'},
                'password': self.password}}},
            'scope': {'project': {'name': self.project,
                                  'domain': {'id': 'default'}}}}}
        resp = request('POST', self.auth_url + '/auth/tokens', body)
        if resp.status != 201:
            raise RuntimeError('keystone refused the token: %r' % (resp,))
        self.token = resp.headers['X-Subject-Token']
        self.catalog = {
            service['type']: endpoint['url']
            for service in resp.body['token'].get('catalog', [])
            for endpoint in service['endpoints']
            if endpoint['interface'] == 'public'}

    def call(self, method, service, path, body=None, headers=None,
             raw=None):
        headers = dict(headers or {})
        headers['X-Auth-Token'] = self.token
        if service == 'compute':
            headers.setdefault('OpenStack-API-Version', 'compute latest')
            headers.setdefault('X-OpenStack-Nova-API-Version', 'latest')
        elif service == 'placement':
            headers.setdefault('OpenStack-API-Version', 'placement 1.28')
        url = self.catalog[service].rstrip('/') + path
        return request(method, url, body, headers, raw)

    def get(self, service, path, **kwargs):
        return self.call('GET', service, path, **kwargs)

    def post(self, service, path, body=None, **kwargs):
        return self.call('POST', service, path, body, **kwargs)

    def put(self, service, path, body=None, **kwargs):
        return self.call('PUT', service, path, body, **kwargs)

    def delete(self, service, path, **kwargs):
        return self.call('DELETE', service, path, **kwargs)
