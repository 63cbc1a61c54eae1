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

"""Bring up and tear down a one-node cloud of the patched Nova.

MariaDB, RabbitMQ, Keystone, Glance, placement, nova-api, nova-conductor,
nova-scheduler and nova-compute (libvirt driver, ``virt_type=qemu``) on a
real libvirtd, each its own process started by ``processes.start`` and
stopped by PID; the network service is ``neutron_standin`` (see there).
Everything lives in one state directory; ``Cloud.down`` (or
``python -m nova_xloud.realcloud cleanup DIR``) ends every process.
"""

import concurrent.futures
import os
import shutil
import socket
import subprocess
import sys
import time

from nova_xloud.realcloud import client
from nova_xloud.realcloud import errors
from nova_xloud.realcloud import processes

PASSWORD = 'xloud-secret'
REGION = 'RegionOne'
HOST = 'realcloud'
# The unprivileged uid that runs the session-mode libvirtd and QEMU.
NOBODY = 65534
DEFAULT_PORT_BASE = 28700
PORTS = {'rabbit': 0, 'rabbit_dist': 1, 'epmd': 2, 'keystone': 3,
         'glance': 4, 'placement': 5, 'nova_api': 6, 'network': 7}
SERVICE_USERS = ('nova', 'placement', 'glance')
# Where Nova's libvirt driver puts the guest agent's socket of a domain
# (org.qemu.guest_agent.0.<instance name>.sock), whatever the libvirtd.
QGA_SOCKET_DIR = '/var/lib/libvirt/qemu'

# Two nova-api processes, so that concurrent adjustments of one server
# meet in MariaDB, not in one process's locks.
WORKERS = {'nova-api': 2}
# Each access log line names the worker's PID and the request id.
ACCESS_LOG_MARK = 'access:'
ACCESS_LOG_FORMAT = (ACCESS_LOG_MARK + ' %(p)s %({x-openstack-request-id}o)s'
                     ' "%(r)s" %(s)s')


def _bin(name):
    """A console script of this virtualenv."""
    return os.path.join(os.path.dirname(sys.executable), name)


def _port_free(port):
    with socket.socket() as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind(('127.0.0.1', port))
        except OSError:
            return False
    return True


def wait_for(what, predicate, timeout, interval=0.2, proc=None, log=None):
    """Poll ``predicate`` until it returns a true value; return it."""
    deadline = time.monotonic() + timeout
    while True:
        try:
            value = predicate()
        except errors.RealCloudError:
            raise
        except Exception:
            # Not up yet (connection refused, a 503 on the way up).
            value = None
        if value:
            return value
        if proc is not None and proc.poll() is not None:
            raise errors.RealCloudError(
                '%s: the process exited with %s%s'
                % (what, proc.returncode, _tail(log)))
        if time.monotonic() > deadline:
            raise errors.RealCloudError('%s: not within %d s%s'
                                        % (what, timeout, _tail(log)))
        time.sleep(interval)


def _tail(log, lines=25):
    if not log or not os.path.exists(log):
        return ''
    with open(log, errors='replace') as handle:
        text = handle.read().splitlines()[-lines:]
    return '\n  last lines of %s:\n    %s' % (log, '\n    '.join(text))


def _writable_by_nobody(path):
    info = os.stat(path)
    return bool(info.st_uid == NOBODY and info.st_mode & 0o200 or
                info.st_mode & 0o002)


def _tcp_open(port):
    with socket.socket() as sock:
        sock.settimeout(1)
        return sock.connect_ex(('127.0.0.1', port)) == 0


def _ini(sections):
    out = []
    for section, options in sections.items():
        out.append('[%s]' % section)
        out.extend('%s = %s' % item for item in options.items())
        out.append('')
    return '\n'.join(out)


class Cloud(object):

    def __init__(self, state_dir, port_base=None, report=print):
        self.state_dir = os.path.abspath(state_dir)
        base = port_base or int(os.environ.get('NOVA_XLOUD_REALCLOUD_PORT',
                                               DEFAULT_PORT_BASE))
        self.port = {name: base + offset for name, offset in PORTS.items()}
        self.report = report
        self.procs = {}
        self.timings = {}
        self.admin = None

    # -- paths -------------------------------------------------------------
    def path(self, *parts):
        return os.path.join(self.state_dir, *parts)

    def url(self, service):
        return 'http://127.0.0.1:%d' % self.port[service]

    @property
    def mysql_socket(self):
        return self.path('mysql', 'mysqld.sock')

    def db_url(self, name):
        return ('mysql+pymysql://root@localhost/%s?unix_socket=%s'
                '&charset=utf8' % (name, self.mysql_socket))

    @property
    def libvirt_uri(self):
        return ('qemu+unix:///session?socket=%s'
                % self.path('libvirt', 'run', 'libvirt', 'libvirt-sock'))

    @property
    def transport_url(self):
        return 'rabbit://guest:guest@127.0.0.1:%d/' % self.port['rabbit']

    def log(self, name):
        return processes.log_path(self.state_dir, name)

    # -- running things ----------------------------------------------------
    def _start(self, name, argv, env=None):
        environ = dict(os.environ)
        environ.update(env or {})
        self.procs[name] = processes.start(self.state_dir, name, argv,
                                           environ)
        return self.procs[name]

    def _run(self, what, argv, env=None, timeout=300):
        environ = dict(os.environ)
        environ.update(env or {})
        environ[processes.MARK] = self.state_dir
        log = self.log('setup')
        os.makedirs(os.path.dirname(log), exist_ok=True)
        with open(log, 'ab') as out:
            out.write(('\n$ %s\n' % ' '.join(argv)).encode())
            out.flush()
            try:
                result = subprocess.run(argv, stdin=subprocess.DEVNULL,
                                        stdout=out, stderr=subprocess.STDOUT,
                                        env=environ, timeout=timeout,
                                        cwd=self.state_dir)
            except subprocess.TimeoutExpired:
                raise errors.RealCloudError('%s: not done within %d s%s'
                                            % (what, timeout, _tail(log)))
            except FileNotFoundError:
                raise errors.RealCloudError('%s: %s is not installed'
                                            % (what, argv[0]))
        if result.returncode:
            raise errors.RealCloudError('%s failed (exit %d)%s'
                                        % (what, result.returncode,
                                           _tail(log)))

    def _timed(self, what, func, *args):
        self.report('[realcloud] %s ...' % what)
        start = time.monotonic()
        result = func(*args)
        self.timings[what] = time.monotonic() - start
        self.report('[realcloud] ... %s done in %.1f s'
                    % (what, self.timings[what]))
        return result

    # -- the whole cloud ---------------------------------------------------
    def up(self):
        self._fresh_state_dir()
        busy = [port for port in self.port.values() if not _port_free(port)]
        if busy:
            raise errors.RealCloudError(
                'ports %s on 127.0.0.1 are in use; set'
                ' NOVA_XLOUD_REALCLOUD_PORT to another base'
                % ', '.join(map(str, busy)))
        self._timed('MariaDB, RabbitMQ and libvirtd', self._start_base)
        self._timed('databases and Keystone', self._setup_databases)
        self._timed('API services', self._start_apis)
        self._timed('catalog and service users', self._register_services)
        self._timed('nova-conductor, nova-scheduler and nova-compute',
                    self._start_nova_services)
        return self

    def up_hypervisor(self):
        """Only libvirtd, in a fresh state directory: a guest on its own."""
        self._fresh_state_dir()
        self._timed('libvirtd', self._start_libvirtd)
        return self

    def down(self):
        ended, left = processes.cleanup(self.state_dir)
        self.procs.clear()
        return ended, left

    def _fresh_state_dir(self):
        if os.path.isdir(self.state_dir):
            processes.cleanup(self.state_dir)
            shutil.rmtree(self.state_dir)
        shutil.rmtree(processes.short_dir(self.state_dir), ignore_errors=True)
        os.makedirs(self.state_dir)
        # QEMU runs as nobody and must reach the instance files.
        os.chmod(self.state_dir, 0o755)
        parent = os.path.dirname(self.state_dir)
        while parent != '/':
            if not os.stat(parent).st_mode & 0o001:
                raise errors.RealCloudError(
                    '%s is not searchable by other users, so QEMU (uid'
                    ' %d) cannot reach %s; choose another state directory'
                    % (parent, NOBODY, self.state_dir))
            parent = os.path.dirname(parent)

    # -- MariaDB, RabbitMQ, libvirtd --------------------------------------
    def _start_base(self):
        with concurrent.futures.ThreadPoolExecutor(3) as pool:
            for future in [pool.submit(self._start_mariadb),
                           pool.submit(self._start_rabbitmq),
                           pool.submit(self._start_libvirtd)]:
                future.result()

    def _start_mariadb(self):
        data = self.path('mysql', 'data')
        os.makedirs(data)
        self._run('initialising MariaDB', [
            'mariadb-install-db', '--no-defaults', '--user=root',
            '--datadir=%s' % data, '--auth-root-authentication-method=normal',
            '--skip-test-db'])
        proc = self._start('mariadb', [
            'mariadbd', '--no-defaults', '--user=root', '--datadir=%s' % data,
            '--socket=%s' % self.mysql_socket, '--skip-networking',
            '--pid-file=%s' % self.path('mysql', 'mariadb.pid'),
            '--innodb-buffer-pool-size=128M',
            '--innodb-flush-log-at-trx-commit=0', '--innodb-doublewrite=0',
            '--max-connections=500', '--character-set-server=utf8mb4'])
        wait_for('MariaDB', lambda: os.path.exists(self.mysql_socket), 60,
                 proc=proc, log=self.log('mariadb'))

    def _start_rabbitmq(self):
        base = self.path('rabbitmq')
        os.makedirs(base)
        config = os.path.join(base, 'rabbitmq.conf')
        with open(config, 'w') as handle:
            handle.write('listeners.tcp.default = 127.0.0.1:%d\n'
                         'loopback_users = none\n'
                         'log.console = true\n'
                         'log.file = false\n' % self.port['rabbit'])
        with open(os.path.join(base, 'enabled_plugins'), 'w') as handle:
            handle.write('[].\n')
        env = {
            'HOME': base, 'ERL_EPMD_PORT': str(self.port['epmd']),
            'ERL_EPMD_ADDRESS': '127.0.0.1',
            'RABBITMQ_NODENAME': 'xloud@localhost',
            'RABBITMQ_NODE_IP_ADDRESS': '127.0.0.1',
            'RABBITMQ_NODE_PORT': str(self.port['rabbit']),
            'RABBITMQ_DIST_PORT': str(self.port['rabbit_dist']),
            'RABBITMQ_CONFIG_FILE': config,
            'RABBITMQ_CONF_ENV_FILE': os.path.join(base, 'rabbitmq-env.conf'),
            'RABBITMQ_ENABLED_PLUGINS_FILE': os.path.join(
                base, 'enabled_plugins'),
            'RABBITMQ_MNESIA_BASE': os.path.join(base, 'mnesia'),
            'RABBITMQ_LOG_BASE': os.path.join(base, 'log'),
            'RABBITMQ_PID_FILE': os.path.join(base, 'rabbitmq.pid'),
        }
        # epmd of our own, on our port, so it is ours to stop.
        self._start('epmd', ['epmd', '-port', str(self.port['epmd']),
                             '-address', '127.0.0.1'], env)
        wait_for('epmd', lambda: _tcp_open(self.port['epmd']), 20,
                 proc=self.procs['epmd'], log=self.log('epmd'))
        proc = self._start('rabbitmq', ['/usr/lib/rabbitmq/bin/'
                                        'rabbitmq-server'], env)
        wait_for('RabbitMQ', lambda: _tcp_open(self.port['rabbit']), 120,
                 proc=proc, log=self.log('rabbitmq'))

    def _start_libvirtd(self):
        home = self.path('libvirt')
        for sub in ('run', 'cache', 'data'):
            os.makedirs(os.path.join(home, sub))
        # libvirt binds each domain's sockets (QEMU's monitor, the guest
        # agent's channel) under the configuration home: a short one, as
        # a UNIX socket path has at most 107 bytes (see short_dir).
        config = processes.short_dir(self.state_dir)
        os.makedirs(config)
        # Nova's domain XML names the agent's socket itself, in
        # QGA_SOCKET_DIR, where the unprivileged QEMU must bind it.
        processes.make_host_dir(self.state_dir, QGA_SOCKET_DIR, NOBODY,
                                NOBODY)
        if not _writable_by_nobody(QGA_SOCKET_DIR):
            raise errors.RealCloudError(
                '%s is not writable by uid %d, so QEMU cannot bind the'
                ' guest agent socket that Nova puts there; give it to'
                ' that user or remove it' % (QGA_SOCKET_DIR, NOBODY))
        subprocess.run(['chown', '-R', '%d:%d' % (NOBODY, NOBODY), home,
                        config], check=True)
        env = {'HOME': home, 'XDG_RUNTIME_DIR': os.path.join(home, 'run'),
               'XDG_CONFIG_HOME': config,
               'XDG_CACHE_HOME': os.path.join(home, 'cache'),
               'XDG_DATA_HOME': os.path.join(home, 'data'),
               'USER': 'nobody', 'LOGNAME': 'nobody'}
        proc = self._start('libvirtd', [
            'setpriv', '--reuid=%d' % NOBODY, '--regid=%d' % NOBODY,
            '--clear-groups', '--', 'libvirtd'], env)
        sock = self.path('libvirt', 'run', 'libvirt', 'libvirt-sock')
        wait_for('libvirtd', lambda: os.path.exists(sock), 30, proc=proc,
                 log=self.log('libvirtd'))

    # -- configuration ----------------------------------------------------
    def _authtoken(self, user):
        return {'www_authenticate_uri': self.url('keystone') + '/v3',
                'auth_url': self.url('keystone') + '/v3',
                'auth_type': 'password', 'username': user,
                'password': PASSWORD, 'project_name': 'service',
                'user_domain_name': 'Default',
                'project_domain_name': 'Default',
                'region_name': REGION}

    def _service_auth(self, user, **extra):
        options = {'auth_type': 'password',
                   'auth_url': self.url('keystone') + '/v3',
                   'username': user, 'password': PASSWORD,
                   'project_name': 'service', 'user_domain_name': 'Default',
                   'project_domain_name': 'Default', 'region_name': REGION}
        options.update(extra)
        return options

    def _write(self, path, text):
        os.makedirs(os.path.dirname(path), exist_ok=True)
        with open(path, 'w') as handle:
            handle.write(text)
        return path

    def _keystone_conf(self):
        return self._write(self.path('keystone', 'keystone.conf'), _ini({
            'DEFAULT': {'debug': 'false'},
            'database': {'connection': self.db_url('keystone')},
            'token': {'provider': 'fernet'},
            # The fewest bcrypt rounds: a test cloud, and 2 busy cores.
            'identity': {'password_hash_rounds': '4'},
            'fernet_tokens': {'key_repository': self.path('keystone',
                                                          'fernet')},
            'credential': {'key_repository': self.path('keystone',
                                                       'credential')},
        }))

    def _placement_conf(self):
        return self._write(self.path('placement', 'placement.conf'), _ini({
            'DEFAULT': {'debug': 'false'},
            'placement_database': {'connection': self.db_url('placement')},
            'api': {'auth_strategy': 'keystone'},
            'keystone_authtoken': self._authtoken('placement'),
        }))

    def _glance_conf(self):
        conf_dir = self.path('glance')
        store = self.path('glance', 'images')
        # Beside glance-api.conf: where Glance 2024.1 looks for it.
        paste = os.path.join(conf_dir, 'glance-api-paste.ini')
        os.makedirs(conf_dir, exist_ok=True)
        shutil.copy(self._glance_paste(), paste)
        return self._write(os.path.join(conf_dir, 'glance-api.conf'), _ini({
            'DEFAULT': {'debug': 'false', 'enabled_backends': 'fs:file',
                        'bind_host': '127.0.0.1',
                        'bind_port': str(self.port['glance']),
                        'public_endpoint': self.url('glance'),
                        'worker_self_reference_url': self.url('glance')},
            'database': {'connection': self.db_url('glance')},
            'glance_store': {'default_backend': 'fs'},
            'fs': {'filesystem_store_datadir': store},
            'os_glance_staging_store': {
                'filesystem_store_datadir': self.path('glance', 'staging')},
            'os_glance_tasks_store': {
                'filesystem_store_datadir': self.path('glance', 'tasks')},
            'keystone_authtoken': self._authtoken('glance'),
            'paste_deploy': {'flavor': 'keystone',
                             'config_file': paste},
            'oslo_policy': {'enforce_new_defaults': 'true'},
        }))

    def _glance_paste(self):
        import glance
        here = os.path.dirname(glance.__file__)
        for candidate in (
                os.path.join(sys.prefix, 'etc', 'glance',
                             'glance-api-paste.ini'),
                os.path.join(here, '..', 'etc', 'glance-api-paste.ini')):
            if os.path.exists(candidate):
                return os.path.abspath(candidate)
        raise errors.RealCloudError(
            "glance-api-paste.ini is not in Glance's installed files")

    def _nova_paste(self):
        import nova
        here = os.path.dirname(nova.__file__)
        for candidate in (
                os.path.join(sys.prefix, 'etc', 'nova', 'api-paste.ini'),
                os.path.join(here, '..', 'etc', 'nova', 'api-paste.ini')):
            if os.path.exists(candidate):
                return os.path.abspath(candidate)
        raise errors.RealCloudError(
            "api-paste.ini is not in Nova's installed files")

    def nova_conf_path(self):
        return self.path('nova', 'nova.conf')

    def _nova_conf(self):
        conf = self.nova_conf_path()
        shutil.copy(self._nova_paste(), self.path('nova', 'api-paste.ini'))
        return self._write(conf, _ini({
            'DEFAULT': {
                'debug': 'true', 'host': HOST, 'my_ip': '127.0.0.1',
                'transport_url': self.transport_url,
                'state_path': self.path('nova', 'state'),
                'instances_path': self.path('nova', 'instances'),
                'compute_driver': 'libvirt.LibvirtDriver',
                # Power off at once: the tiny guest has no ACPI daemon.
                'shutdown_timeout': '0',
                'heal_instance_info_cache_interval': '-1',
                'instance_usage_audit': 'false',
                'use_rootwrap_daemon': 'false',
                # Keep the qcow2 image as it comes from Glance: qemu-img
                # would write a raw copy 0644, which QEMU (nobody) cannot
                # open for writing; Python and cp honour umask 0.
                'force_raw_images': 'false',
            },
            'api': {'auth_strategy': 'keystone'},
            'wsgi': {'api_paste_config': self.path('nova', 'api-paste.ini')},
            'api_database': {'connection': self.db_url('nova_api')},
            'database': {'connection': self.db_url('nova_cell1')},
            'keystone_authtoken': self._authtoken('nova'),
            'placement': self._service_auth('nova'),
            'service_user': self._service_auth(
                'nova', send_service_user_token='true'),
            'glance': self._service_auth(
                'nova', endpoint_override=self.url('glance')),
            'neutron': self._service_auth(
                'nova', endpoint_override=self.url('network')),
            'libvirt': {'virt_type': 'qemu', 'cpu_mode': 'custom',
                        'cpu_models': 'qemu64',
                        'connection_uri': self.libvirt_uri,
                        'images_type': 'flat'},
            'nova_sys_admin': {
                'helper_command': '%s --config-file %s'
                                  % (_bin('privsep-helper'), conf)},
            'oslo_concurrency': {'lock_path': self.path('nova', 'locks')},
            'scheduler': {'discover_hosts_in_cells_interval': '-1',
                          'workers': '1'},
            'conductor': {'workers': '1'},
            'vnc': {'enabled': 'false'},
            'spice': {'enabled': 'false'},
            'os_vif_ovs': {},
            'oslo_messaging_notifications': {'driver': 'noop'},
            'cinder': {'os_region_name': REGION},
        }))

    # -- databases --------------------------------------------------------
    def _setup_databases(self):
        names = ('keystone', 'glance', 'placement', 'nova_api', 'nova_cell0',
                 'nova_cell1')
        self._run('creating the databases', [
            'mariadb', '--no-defaults', '--socket=%s' % self.mysql_socket,
            '-uroot', '-e', ' '.join('CREATE DATABASE %s;' % name
                                     for name in names)])
        os.makedirs(self.path('nova', 'state'))
        os.makedirs(self.path('nova', 'instances'))
        os.makedirs(self.path('nova', 'locks'))
        self._nova_conf()
        keystone_conf = self._keystone_conf()
        glance_conf = self._glance_conf()
        placement_conf = self._placement_conf()
        nova_manage = [_bin('nova-manage'), '--config-file',
                       self.nova_conf_path()]
        jobs = [
            lambda: self._setup_keystone(keystone_conf),
            lambda: self._run('glance-manage db_sync', [
                _bin('glance-manage'), '--config-file', glance_conf,
                'db_sync']),
            lambda: self._run('placement-manage db sync', [
                _bin('placement-manage'), '--config-file', placement_conf,
                'db', 'sync']),
            lambda: self._setup_nova_databases(nova_manage),
        ]
        with concurrent.futures.ThreadPoolExecutor(len(jobs)) as pool:
            for future in [pool.submit(job) for job in jobs]:
                future.result()

    def _setup_nova_databases(self, nova_manage):
        self._run('nova-manage api_db sync',
                  nova_manage + ['api_db', 'sync'])
        self._run('nova-manage cell_v2 map_cell0', nova_manage + [
            'cell_v2', 'map_cell0', '--database_connection',
            self.db_url('nova_cell0')])
        self._run('nova-manage db sync', nova_manage + ['db', 'sync'])
        self._run('nova-manage cell_v2 create_cell', nova_manage + [
            'cell_v2', 'create_cell', '--name', 'cell1'])

    def _setup_keystone(self, conf):
        manage = [_bin('keystone-manage'), '--config-file', conf]
        self._run('keystone-manage db_sync', manage + ['db_sync'])
        for repo in ('fernet', 'credential'):
            os.makedirs(self.path('keystone', repo))
        self._run('keystone-manage fernet_setup', manage + [
            'fernet_setup', '--keystone-user', 'root',
            '--keystone-group', 'root'])
        self._run('keystone-manage credential_setup', manage + [
            'credential_setup', '--keystone-user', 'root',
            '--keystone-group', 'root'])
        keystone_v3 = self.url('keystone') + '/v3'
        self._run('keystone-manage bootstrap', manage + [
            'bootstrap', '--bootstrap-password', PASSWORD,
            '--bootstrap-admin-url', keystone_v3,
            '--bootstrap-internal-url', keystone_v3,
            '--bootstrap-public-url', keystone_v3,
            '--bootstrap-region-id', REGION])

    # -- API services -----------------------------------------------------
    def _gunicorn(self, name, factory, port, env, workers=1):
        argv = [_bin('gunicorn'), '--bind', '127.0.0.1:%d' % port,
                '--workers', str(workers), '--timeout', '300',
                '--graceful-timeout', '2', '--access-logfile', '-',
                '--access-logformat', ACCESS_LOG_FORMAT,
                '--error-logfile', '-',
                'nova_xloud.realcloud.wsgi_apps:%s()' % factory]
        return self._start(name, argv, env)

    def _start_apis(self):
        services = [
            ('keystone', 'keystone', 'keystone',
             {'OS_KEYSTONE_CONFIG_DIR': self.path('keystone')}),
            ('glance', 'glance', 'glance',
             {'OS_GLANCE_CONFIG_DIR': self.path('glance')}),
            ('placement', 'placement', 'placement',
             {'OS_PLACEMENT_CONFIG_DIR': self.path('placement')}),
            ('nova-api', 'nova_api', 'nova_api',
             {'OS_NOVA_CONFIG_DIR': self.path('nova')}),
            ('neutron-standin', 'neutron_standin', 'network', {}),
        ]
        for name, factory, port, env in services:
            self._gunicorn(name, factory, self.port[port], env,
                           workers=WORKERS.get(name, 1))
        # gunicorn listens before its worker loaded the application: wait
        # for an answer from the application itself.
        for name, factory, port, env in services:
            wait_for(name, lambda: client.request(
                'GET', self.url(port) + '/', timeout=10).status < 500, 180,
                proc=self.procs[name], log=self.log(name))

    def _register_services(self):
        admin = client.Session(self.url('keystone') + '/v3', 'admin',
                               PASSWORD, 'admin')
        identity = admin.catalog['identity']

        def post(path, body):
            resp = client.request('POST', identity + path, body,
                                  {'X-Auth-Token': admin.token})
            if resp.status not in (200, 201):
                raise errors.RealCloudError('keystone POST %s: %r'
                                            % (path, resp))
            return resp.body

        def put(path):
            resp = client.request('PUT', identity + path, None,
                                  {'X-Auth-Token': admin.token})
            if resp.status not in (200, 201, 204):
                raise errors.RealCloudError('keystone PUT %s: %r'
                                            % (path, resp))

        roles = client.request('GET', identity + '/roles?name=admin', None,
                               {'X-Auth-Token': admin.token}).body['roles']
        admin_role = roles[0]['id']
        project = post('/projects', {'project': {
            'name': 'service', 'domain_id': 'default'}})['project']['id']
        for user in SERVICE_USERS:
            user_id = post('/users', {'user': {
                'name': user, 'password': PASSWORD,
                'domain_id': 'default'}})['user']['id']
            put('/projects/%s/users/%s/roles/%s'
                % (project, user_id, admin_role))
        for name, kind, url in (
                ('nova', 'compute', self.url('nova_api') + '/v2.1'),
                ('placement', 'placement', self.url('placement')),
                ('glance', 'image', self.url('glance')),
                ('neutron', 'network', self.url('network'))):
            service = post('/services', {'service': {
                'name': name, 'type': kind}})['service']['id']
            # Public only: every client here falls back to it.
            post('/endpoints', {'endpoint': {
                'service_id': service, 'interface': 'public', 'url': url,
                'region_id': REGION}})
        self.admin = client.Session(self.url('keystone') + '/v3', 'admin',
                                    PASSWORD, 'admin')

    # -- nova services ------------------------------------------------------
    def _start_nova_services(self):
        conf = self.nova_conf_path()
        for name in ('nova-conductor', 'nova-scheduler'):
            self._start(name, [_bin(name), '--config-file', conf])
        # umask 0: disks and console logs that root writes must be
        # readable by QEMU, which runs as nobody.
        self._start('nova-compute', [
            'sh', '-c', 'umask 0 && exec "$0" "$@"', _bin('nova-compute'),
            '--config-file', conf])
        wait_for('nova-compute and its hypervisor in the API',
                 self._compute_up, 240, interval=1,
                 proc=self.procs['nova-compute'],
                 log=self.log('nova-compute'))
        self._run('nova-manage cell_v2 discover_hosts', [
            _bin('nova-manage'), '--config-file', conf, 'cell_v2',
            'discover_hosts'])
        wait_for('the compute node in placement', self.provider, 120,
                 interval=1, proc=self.procs['nova-compute'],
                 log=self.log('nova-compute'))

    def _compute_up(self):
        resp = self.admin.get('compute', '/os-services')
        states = {service['binary']: service['state']
                  for service in resp.body['services']}
        return all(states.get(binary) == 'up' for binary in (
            'nova-conductor', 'nova-scheduler', 'nova-compute'))

    def provider(self):
        """The compute node's resource provider with VCPU inventory."""
        resp = self.admin.get('placement', '/resource_providers')
        for provider in resp.body['resource_providers']:
            inventories = self.admin.get(
                'placement', '/resource_providers/%s/inventories'
                % provider['uuid']).body['inventories']
            if 'VCPU' in inventories:
                return dict(provider, inventories=inventories)
        return None

    def sql(self, database, query):
        """Rows of a query run with the mariadb client, as lists of text."""
        result = subprocess.run(
            ['mariadb', '--socket', self.mysql_socket, '--user', 'root',
             '--batch', '--skip-column-names', '--execute', query,
             database], capture_output=True, text=True, timeout=60)
        if result.returncode:
            raise errors.RealCloudError('SQL %r: %s'
                                        % (query, result.stderr))
        return [line.split('\t') for line in result.stdout.splitlines()]

    def api_processes(self, request_ids):
        """{request id: PID of the nova-api worker that answered it}."""
        served = {}
        with open(self.log('nova-api')) as handle:
            for line in handle:
                words = line.split()
                if (len(words) > 2 and words[0] == ACCESS_LOG_MARK and
                        words[2] in request_ids):
                    served[words[2]] = int(words[1].strip('<>'))
        return served

    def virsh(self, *args):
        result = subprocess.run(['virsh', '-c', self.libvirt_uri] +
                                list(args), capture_output=True, text=True,
                                timeout=60)
        if result.returncode:
            raise errors.RealCloudError('virsh %s: %s'
                                        % (' '.join(args), result.stderr))
        return result.stdout

    def service_logs(self, lines=15):
        return ''.join(_tail(self.log(name), lines)
                       for name in sorted(self.procs))
