using System.Net;
using Postern.MailAuth.Spf;

namespace Postern.MailAuth.Tests.Spf;

/// <summary>The macro language of RFC 7208 §7: the examples of §7.4, escapes, transformers, and what is a syntax error.</summary>
public sealed class SpfMacroExpansion
{
    private static readonly DateTimeOffset Now = DateTimeOffset.FromUnixTimeSeconds(1_700_000_000);

    private static SpfMacroValues Values(string ip = "192.0.2.3") => new(
        Sender: "strong-bad@email.example.com",
        LocalPart: "strong-bad",
        SenderDomain: "email.example.com",
        Domain: "email.example.com",
        Ip: IPAddress.Parse(ip),
        Helo: "mx.example.org",
        ReceivingHost: "receiver.example",
        Now: Now);

    private static string Expand(string macro, bool explanation = false, string ip = "192.0.2.3")
    {
        Assert.True(SpfMacroString.TryParse(macro, explanation, out var parsed, out var error), error);
        return parsed.Expand(Values(ip)) ?? throw new InvalidOperationException("expansion too long");
    }

    // RFC 7208 §7.4, the examples, in order.
    [Theory]
    [InlineData("%{s}", "strong-bad@email.example.com")]
    [InlineData("%{o}", "email.example.com")]
    [InlineData("%{d}", "email.example.com")]
    [InlineData("%{d4}", "email.example.com")]
    [InlineData("%{d3}", "email.example.com")]
    [InlineData("%{d2}", "example.com")]
    [InlineData("%{d1}", "com")]
    [InlineData("%{dr}", "com.example.email")]
    [InlineData("%{d2r}", "example.email")]
    [InlineData("%{l}", "strong-bad")]
    [InlineData("%{l-}", "strong.bad")]
    [InlineData("%{lr}", "strong-bad")]
    [InlineData("%{lr-}", "bad.strong")]
    [InlineData("%{l1r-}", "strong")]
    [InlineData("%{ir}.%{v}._spf.%{d2}", "3.2.0.192.in-addr._spf.example.com")]
    [InlineData("%{lr-}.lp._spf.%{d2}", "bad.strong.lp._spf.example.com")]
    [InlineData("%{lr-}.lp.%{ir}.%{v}._spf.%{d2}", "bad.strong.lp.3.2.0.192.in-addr._spf.example.com")]
    [InlineData("%{ir}.%{v}.%{l1r-}.lp._spf.%{d2}", "3.2.0.192.in-addr.strong.lp._spf.example.com")]
    [InlineData("%{d2}.trusted-domains.example.net", "example.com.trusted-domains.example.net")]
    public void Rfc7208Examples(string macro, string expected) => Assert.Equal(expected, Expand(macro));

    [Fact]
    public void Ipv6IsDottedNibbles() =>
        Assert.Equal("1.0.b.c.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.8.b.d.0.1.0.0.2.ip6._spf.example.com",
            Expand("%{ir}.%{v}._spf.%{d2}", ip: "2001:db8::cb01"));

    [Theory]
    [InlineData("%{c}", "192.0.2.3", "192.0.2.3")]
    [InlineData("%{c}", "2001:db8::cb01", "2001:db8::cb01")]
    [InlineData("%{i}", "2001:db8::cb01", "2.0.0.1.0.d.b.8.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.c.b.0.1")]
    [InlineData("%{r}", "192.0.2.3", "receiver.example")]
    [InlineData("%{t}", "192.0.2.3", "1700000000")]
    [InlineData("%{h}", "192.0.2.3", "mx.example.org")]
    [InlineData("%{p}", "192.0.2.3", "unknown")]
    public void OtherLetters(string macro, string ip, string expected) => Assert.Equal(expected, Expand(macro, explanation: true, ip: ip));

    [Theory]
    [InlineData("%%", "%")]
    [InlineData("%_", " ")]
    [InlineData("%-", "%20")]
    [InlineData("a%%b%_c%-d", "a%b c%20d")]
    public void Escapes(string macro, string expected) => Assert.Equal(expected, Expand(macro));

    [Theory]
    // RFC 7208 §7.3: upper case letters are URL-escaped, all but the unreserved characters.
    [InlineData("%{L}", "strong-bad")]
    [InlineData("%{S}", "strong-bad%40email.example.com")]
    [InlineData("%{D2}", "example.com")]
    public void UpperCaseIsUrlEscaped(string macro, string expected) => Assert.Equal(expected, Expand(macro));

    [Fact]
    public void UrlEscapeKeepsUnreservedOnly()
    {
        Assert.Equal("~jack%26jill%3Dup-a_b3.c", SpfMacroString.UrlEscape("~jack&jill=up-a_b3.c"));
        Assert.Equal("%C3%BC%20%2F", SpfMacroString.UrlEscape("ü /"));
    }

    [Theory]
    // Several delimiters, then more parts than there are, then a huge count.
    [InlineData("%{l2r+-}", "foo-bar+zip+quux", "bar.foo")]
    [InlineData("%{l9}", "a.b", "a.b")]
    [InlineData("%{l99999999999}", "a.b", "a.b")]
    [InlineData("%{l=/,_}", "a=b/c,d_e", "a.b.c.d.e")]
    [InlineData("%{l}", "a..b", "a..b")]
    public void Transformers(string macro, string localPart, string expected)
    {
        Assert.True(SpfMacroString.TryParse(macro, false, out var parsed, out var error), error);
        Assert.Equal(expected, parsed.Expand(Values() with { LocalPart = localPart }));
    }

    [Fact]
    public void ExpansionIsBounded()
    {
        // 400 escaped senders of 28 characters each would be over 11,000 characters.
        Assert.True(SpfMacroString.TryParse(string.Concat(Enumerable.Repeat("%{S}", 400)), true, out var parsed, out _));
        Assert.Null(parsed.Expand(Values()));
        Assert.Null(SpfDomainName.ToQueryName(null));
    }

    [Theory]
    [InlineData("%")]          // '%' at the end
    [InlineData("%a")]         // '%' not followed by { % _ -
    [InlineData("%(ir)")]
    [InlineData("%{x}")]       // no such letter
    [InlineData("%{a}")]
    [InlineData("%{d")]        // unterminated
    [InlineData("%{d0}")]      // zero parts (RFC 7208 §7.3: MUST be nonzero)
    [InlineData("%{dr2}")]     // digits come before r
    [InlineData("%{d:}")]      // ':' is no delimiter
    [InlineData("%{c}")]       // c, r, t only in explanations
    [InlineData("%{r}")]
    [InlineData("%{T}")]
    [InlineData("a b")]        // a space only in explanations
    [InlineData("caf\u00e9")]  // 7-bit only
    public void SyntaxErrors(string macro) => Assert.False(SpfMacroString.TryParse(macro, false, out _, out _));

    [Theory]
    [InlineData("%{c} is not allowed", true)]
    [InlineData("%{t}", true)]
    [InlineData("The %{x}-files.", false)]
    [InlineData("\u00efExplanation", false)]
    [InlineData("tab\there", false)]
    public void ExplanationText(string text, bool valid) => Assert.Equal(valid, SpfMacroString.TryParse(text, true, out _, out _));

    [Theory]
    [InlineData("example.com", true)]
    [InlineData("example.com.", true)]
    [InlineData("%{d}", true)]
    [InlineData("%{d}.example.com", true)]
    [InlineData("foo.%-", true)]               // domain-end may be any macro-expand
    [InlineData("foo:bar/baz.example.com", true)]
    [InlineData("foo.example.xn--zckzah", true)]
    [InlineData("", false)]
    [InlineData("foo-bar", false)]             // no "." toplabel
    [InlineData("museum.", false)]
    [InlineData("111.222.33.44", false)]       // an all-numeric toplabel
    [InlineData("abc.123", false)]
    [InlineData("example.-com", false)]
    [InlineData("example.com:8080", false)]
    [InlineData("mail.example.com/24", false)]
    public void DomainSpec(string text, bool valid) => Assert.Equal(valid, SpfMacroString.TryParseDomainSpec(text, out _, out _));

    [Fact]
    public void LongNamesLoseLabelsFromTheLeft()
    {
        // RFC 7208 §7.3: over 253 characters, whole labels go from the left until it fits.
        var label = new string('a', 50);
        var name = string.Join('.', Enumerable.Repeat(label, 6)); // 305 characters
        var queried = SpfDomainName.ToQueryName(name + ".");
        Assert.NotNull(queried);
        Assert.True(queried.Length <= 253);
        Assert.Equal(string.Join('.', Enumerable.Repeat(label, 4)), queried);
    }

    [Theory]
    [InlineData("mail.example...com")]
    [InlineData(".example.com")]
    [InlineData("a123456789012345678901234567890123456789012345678901234567890123.example.com")]
    [InlineData("")]
    public void UnqueryableNamesAreNull(string name) => Assert.Null(SpfDomainName.ToQueryName(name));
}
