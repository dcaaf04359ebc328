/* Auto-refresh of the workflow admin's instance list and running instance pages.

   Every data-seconds seconds the page fetches its own URL and swaps in the fresh content (the
   list's table and paginator, or the instance page's #content-main and title): no full reload,
   so the scroll position stays, and folded or unfolded tracebacks stay as they were. It waits
   while the operator is doing something on the page (rows selected, an action chosen, a field
   focused), and stops on an instance page once the execution has ended (data-live="0"). The
   pause/resume button is remembered in localStorage for all pages of the admin.
   #wf-refresh's data-refreshes counts the swaps (tests wait on it). */
'use strict';
{
    const PAUSED_KEY = 'django_workflows.refresh.paused';
    // The admin's JavaScript catalog is loaded on the list, not on the instance page.
    const gettext = window.gettext || ((text) => text);
    const interpolate = window.interpolate || ((format, values) => format.replace('%s', values[0]));

    function isPaused() {
        try {
            return window.localStorage.getItem(PAUSED_KEY) === '1';
        } catch (error) {
            return false;  // storage disabled: never paused
        }
    }

    function setPaused(paused) {
        try {
            window.localStorage.setItem(PAUSED_KEY, paused ? '1' : '0');
        } catch (error) {
            // storage disabled: the choice lasts until the page is left
        }
    }

    // Whether the operator is in the middle of something a swap would disturb.
    function busyOperator() {
        if (document.querySelector('#result_list input.action-select:checked, #action-toggle:checked')) {
            return true;
        }
        const action = document.querySelector('#changelist-form select[name=action]');
        if (action && action.value) {
            return true;
        }
        const active = document.activeElement;
        return Boolean(active && active.matches('input:not([type=checkbox]):not([type=submit]), textarea, select'));
    }

    function swap(selector, fresh) {
        const current = document.querySelector(selector);
        const replacement = fresh.querySelector(selector);
        if (current && replacement) {
            current.replaceWith(document.importNode(replacement, true));
        }
    }

    function swapList(fresh) {
        swap('#result_list', fresh);
        swap('#changelist-form .paginator', fresh);
        const counter = document.querySelector('.action-counter');
        const freshCounter = fresh.querySelector('.action-counter');
        if (counter && freshCounter) {
            counter.textContent = freshCounter.textContent;
            counter.dataset.actionsIcnt = freshCounter.dataset.actionsIcnt;
        }
        // The admin's actions.js binds the row checkboxes it found at load: bind the new ones.
        const checkboxes = document.querySelectorAll('tr input.action-select');
        if (window.Actions && checkboxes.length) {
            window.Actions(checkboxes);
        }
    }

    function swapDetail(fresh) {
        const open = Array.from(document.querySelectorAll('#content-main details[id]')).map(
            (details) => [details.id, details.open]
        );
        swap('#wf-title', fresh);
        swap('#content-main', fresh);
        open.forEach(([id, wasOpen]) => {
            const details = document.getElementById(id);
            if (details) {
                details.open = wasOpen;
            }
        });
    }

    function start(bar) {
        const seconds = Math.max(parseFloat(bar.dataset.seconds) || 5, 0.2);
        const button = document.getElementById('wf-refresh-toggle');
        const state = document.getElementById('wf-refresh-state');
        let timer = null;
        let running = false;

        function show(text) {
            state.textContent = text;
        }

        function render() {
            const paused = isPaused();
            button.hidden = bar.dataset.live !== '1';
            button.textContent = paused ? gettext('Resume auto-refresh') : gettext('Pause auto-refresh');
            button.setAttribute('aria-pressed', paused ? 'true' : 'false');
            if (paused) {
                show(gettext('Auto-refresh paused.'));
            }
        }

        function schedule() {
            window.clearTimeout(timer);
            if (bar.dataset.live === '1' && !isPaused()) {
                timer = window.setTimeout(refresh, seconds * 1000);
            }
        }

        async function refresh() {
            if (running || isPaused() || bar.dataset.live !== '1') {
                return;
            }
            if (busyOperator()) {
                show(gettext('Auto-refresh waits while you select rows or type.'));
                schedule();
                return;
            }
            running = true;
            try {
                const response = await fetch(window.location.href, {
                    credentials: 'same-origin',
                    headers: {'X-Requested-With': 'XMLHttpRequest'},
                });
                const url = new URL(response.url);
                if (!response.ok || url.pathname !== window.location.pathname) {
                    // Logged out, the instance removed, a server error: stop and say so.
                    bar.dataset.live = '0';
                    show(gettext('Auto-refresh stopped: reload the page.'));
                    return;
                }
                const fresh = new DOMParser().parseFromString(await response.text(), 'text/html');
                if (busyOperator() || isPaused()) {
                    return;  // the operator started something while the page was loading
                }
                if (bar.dataset.kind === 'list') {
                    swapList(fresh);
                } else {
                    swapDetail(fresh);
                }
                const freshBar = fresh.getElementById('wf-refresh');
                if (freshBar) {
                    bar.dataset.live = freshBar.dataset.live;
                }
                bar.dataset.refreshes = String(Number(bar.dataset.refreshes) + 1);
                const now = new Date().toLocaleTimeString([], {hour12: false});
                show(bar.dataset.live === '1'
                    ? interpolate(gettext('Updated at %s.'), [now])
                    : interpolate(gettext('Updated at %s; the execution has ended.'), [now]));
                render();
            } catch (error) {
                show(gettext('Auto-refresh failed; trying again.'));
            } finally {
                running = false;
                schedule();
            }
        }

        button.addEventListener('click', () => {
            setPaused(!isPaused());
            render();
            if (!isPaused()) {
                show('');
                refresh();
            } else {
                window.clearTimeout(timer);
            }
        });
        // Another tab paused or resumed.
        window.addEventListener('storage', (event) => {
            if (event.key === PAUSED_KEY) {
                render();
                schedule();
            }
        });
        render();
        schedule();
    }

    function ready(fn) {
        if (document.readyState !== 'loading') {
            fn();
        } else {
            document.addEventListener('DOMContentLoaded', fn);
        }
    }

    ready(() => {
        const bar = document.getElementById('wf-refresh');
        if (bar) {
            start(bar);
        }
    });
}
